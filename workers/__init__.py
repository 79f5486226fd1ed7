"""The module the worker command imports: `python -m service.worker workers` (Dramatiq's CLI, Procfile).

Dramatiq's contract: the CLI, given a module and no variable, runs Dramatiq's global broker, and each
`@dramatiq.actor` is declared on the global broker when its module is imported. So importing this
package sets up logging, builds the broker once (`build_broker`, which makes it the global one) and
only then imports the actors. Nothing else builds it: tests that need it import this package and take
`dramatiq.get_broker()`.
"""

from service.config import get_settings
from service.logs import setup_logging
from workers.broker import build_broker

setup_logging(get_settings().log_level)
build_broker()

from workers import imports, notifications  # noqa: E402, F401  (declares the actors, on the broker just built)
