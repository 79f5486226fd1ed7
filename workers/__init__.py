"""`dramatiq workers` starts every actor: importing this package sets up the broker and declares them."""

from workers import broker as _broker  # noqa: F401  (sets the global broker before any actor is declared)
from workers import imports, notifications  # noqa: F401
