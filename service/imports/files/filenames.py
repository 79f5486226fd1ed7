"""Names under which uploads are stored: `<job id>_<safe_filename(client name)>`."""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_CHARS = 100
MAX_EXTENSION_CHARS = 10
MAX_NAME_BYTES = 150  # well under the 255-byte file-name limit of common filesystems, with the job id prefix
DEFAULT_STEM = "upload"

# Letters and digits of any script are kept (names are shown back to users); anything else that could
# mean something to a shell, a path or an HTTP header becomes "_".
_UNSAFE = re.compile(r"[^\w.()+ -]+")
_RUNS = re.compile(r"[_ ]{2,}")


def safe_filename(name: str) -> str:
    """A file name with no directory part, no traversal, no control or invisible characters, bounded length.

    The extension is kept (lower-cased) so the stored file still says what it is.
    """
    name = unicodedata.normalize("NFC", name)
    # Control characters and invisible formatting ones (e.g. U+202E, which can disguise "exe.csv").
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"))
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    ext = _UNSAFE.sub("", ext).lower()[:MAX_EXTENSION_CHARS]
    stem = _RUNS.sub("_", _UNSAFE.sub("_", stem)).strip(" ._-") or DEFAULT_STEM
    suffix = f".{ext}" if ext else ""
    stem = stem[: MAX_NAME_CHARS - len(suffix)]
    while len((stem + suffix).encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    stem = stem.rstrip(" .") or DEFAULT_STEM
    return stem + suffix
