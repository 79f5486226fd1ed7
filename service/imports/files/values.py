"""Value rules of the importer: the words and numbers a file may use for a task field (dates: `dates.py`).

Every format shares these rules; a preset adds its own words (`presets.py`). A rule is turned into a
converter function once per file (`status_converter`, `priority_converter`, `dates.date_converter`), so
the per-row work is a dict hit for the values a file repeats and a call only for a value not seen before.
A converter returns the field's value or raises ValueError with the message a user sees; `Lenient` (a
ValueError) means "no value, and a warning rather than a row error".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from service.imports.files.cells import as_text
from service.tasks import rules

Converter = Callable[[object], object]

STATUS_WORDS: dict[str, tuple[str, ...]] = {
    "todo": ("todo", "to do", "open", "backlog", "new", "not started"),
    "in_progress": ("in progress", "doing", "started", "in review"),
    "done": ("done", "closed", "resolved", "complete", "completed"),
}
DONE_FLAGS = ("true", "yes", "y", "x", "✓", "✔", "☑", "1")
NOT_DONE_FLAGS = ("false", "no", "n", "0", "☐")
PRIORITY_WORDS: dict[int, tuple[str, ...]] = {
    1: ("highest", "urgent", "critical", "blocker", "p1"),
    2: ("high", "p2"),
    3: ("medium", "normal", "p3"),
    4: ("low", "p4"),
    5: ("lowest", "trivial", "none"),
}

STATUS_MESSAGE = "Status must be one of todo, in_progress, done (or a word such as to do, in progress, closed)"
PRIORITY_MESSAGE = "Priority must be a whole number from 1 to 5 (1 the most urgent) or a word such as high or low"
WHOLE_PRIORITY_MESSAGE = "Priority must be a whole number from 1 to 5"
DATE_MESSAGE = "Due date must be a date, such as 2026-12-05, Dec 5, 2026 or 12/05/2026"
CACHE_MAX = 10_000  # distinct cell values remembered per converter


class Lenient(ValueError):
    """The cell holds no usable value, but that is worth a warning, not a row error."""


def word(text: str) -> str:
    """A value as the rules compare it: case, spaces, hyphens and underscores do not matter."""
    return " ".join(text.replace("_", " ").replace("-", " ").split()).casefold()


def _table(words: Mapping[object, Iterable[str]]) -> dict[str, object]:
    return {word(w): value for value, spellings in words.items() for w in spellings}


# --- status ------------------------------------------------------------------------------------------

StatusKind = Literal["words", "flag", "filled"]


def status_converter(kind: StatusKind, extra: Mapping[str, Iterable[str]] | None = None) -> Converter:
    """`words`: a status column (To Do, In Progress, Closed...). `flag`: a done column (Done, Done?,
    Completed) that may also hold yes/no, true/false, x or ✓. `filled`: a completion date column
    (Completed At): done when it holds anything."""
    table = _table(STATUS_WORDS)
    if extra:
        table.update(_table(extra))
    if kind == "flag":
        table.update(dict.fromkeys(map(word, DONE_FLAGS), "done"))
        table.update(dict.fromkeys(map(word, NOT_DONE_FLAGS), "todo"))
    if kind == "filled":

        def filled(value: object) -> str:
            return "done" if text_of(value).strip() else rules.DEFAULT_STATUS

        return filled

    def convert(value: object) -> str:
        text = text_of(value)
        if not text.strip():
            return rules.DEFAULT_STATUS
        found = table.get(word(text))
        if found is None:
            raise ValueError(STATUS_MESSAGE)
        return found  # type: ignore[return-value]

    return convert


# --- priority ----------------------------------------------------------------------------------------


def priority_converter(extra: Mapping[int, Iterable[str]] | None = None) -> Converter:
    """Numbers 1-5 as they are (1 the most urgent), and the priority words (High, p1, Urgent...)."""
    table = _table(PRIORITY_WORDS)
    if extra:
        table.update(_table(extra))

    def convert(value: object) -> int:
        if isinstance(value, bool):
            raise ValueError(PRIORITY_MESSAGE)
        if isinstance(value, int | float):
            return _whole_priority(value)
        text = text_of(value).strip()
        if not text:
            return rules.DEFAULT_PRIORITY
        found = table.get(word(text))
        if found is not None:
            return found  # type: ignore[return-value]
        try:
            number = float(text)  # "2", "+5", "3.0" as spreadsheets export whole numbers
        except ValueError:
            raise ValueError(PRIORITY_MESSAGE) from None
        return _whole_priority(number)

    return convert


def _whole_priority(number: float) -> int:
    if number != number or not float(number).is_integer():  # NaN, 2.5
        raise ValueError(WHOLE_PRIORITY_MESSAGE)
    return rules.priority(int(number))  # "Priority must be from 1 to 5" outside the range


def text_of(value: object) -> str:
    """A cell as the text a user typed (a number or date cell as a spreadsheet shows it)."""
    return value if type(value) is str else as_text(value)
