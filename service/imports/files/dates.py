"""Due dates as files write them: ISO dates and date-times, `Dec 5, 2026`, `5 Dec 2026`, slash dates,
Excel serials and Unix times.

Slash dates (12/05/2026) are read month-first or day-first per column, decided by `decide_date_orders`
from the first rows of the file: the decision depends only on the file's beginning, so a worker that
resumes a job half-way decides exactly as the first one did.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from service.imports.files.values import DATE_MESSAGE, Converter, Lenient, text_of
from service.tasks import rules

Order = Literal["mdy", "dmy"]
ORDER_NAMES: dict[Order, str] = {"mdy": "month-first (MM/DD/YYYY)", "dmy": "day-first (DD/MM/YYYY)"}

_TIME = r"(?:[T ,]+\d{1,2}(?::\d{2}){1,2}(?:[.,]\d+)?\s*(?:[AaPp]\.?[Mm]\.?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?|UTC|GMT)?)?"
_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})" + _TIME, re.ASCII)
_YMD = re.compile(r"(\d{4})([/.])(\d{1,2})\2(\d{1,2})" + _TIME, re.ASCII)
_SLASH = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})" + _TIME, re.ASCII)
_WEEKDAY = r"(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?,?\s+)?"
_DAY_MONTH_YEAR = re.compile(  # 5 Dec 2026, 12/Dec/26, 05/Nov/26 9:30 AM, 12-Dec-2026
    _WEEKDAY + r"(\d{1,2})(?:st|nd|rd|th)?[\s/.-]+([a-z]{3,9})\.?[\s/.,-]+(\d{4}|\d{2})" + _TIME, re.ASCII
)
_MONTH_DAY_YEAR = re.compile(  # Dec 5, 2026; December 5th 2026; Tuesday, December 5th 2026
    _WEEKDAY + r"([a-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})" + _TIME, re.ASCII
)
_NUMBER = re.compile(r"\d{1,14}(?:\.\d+)?", re.ASCII)
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",),
            ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"),
            ("oct", "october"), ("nov", "november"), ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}  # fmt: skip
EXCEL_EPOCH = date(1899, 12, 30)  # serial 1 is 1900-01-01 in Excel's (Lotus-compatible) count
SERIAL_MAX = 100_000  # serials up to the year 2173; larger numbers are Unix times
UNIX_SECONDS_MIN, UNIX_MS_MIN, UNIX_MS_MAX = 10**8, 10**11, 10**14


def _year(text: str) -> int:
    return 2000 + int(text) if len(text) == 2 else int(text)  # Jira's 12/Dec/26 is 2026


def _make(year: int, month: int, day: int) -> date:
    try:
        value = date(year, month, day)
    except ValueError:
        raise ValueError("Due date must be a real date (month 1-12, a day that month has)") from None
    return rules.due_date(value)  # type: ignore[return-value]  # the same range as POST /tasks


def _from_number(number: float) -> date:
    if 0 < number < SERIAL_MAX:
        return _make_from(EXCEL_EPOCH + timedelta(days=int(number)))
    if UNIX_SECONDS_MIN <= number < UNIX_MS_MIN:
        return _make_from(datetime.fromtimestamp(number, UTC).date())
    if UNIX_MS_MIN <= number < UNIX_MS_MAX:
        return _make_from(datetime.fromtimestamp(number / 1000, UTC).date())
    raise ValueError(DATE_MESSAGE)


def _make_from(value: date) -> date:
    return _make(value.year, value.month, value.day)


def parse_date(value: object, order: Order) -> date:
    """A due date from a cell: ISO dates and date-times (their date), `Dec 5, 2026`, `5 Dec 2026`,
    `12/Dec/26`, slash dates read in `order`, Excel serials, Unix seconds and milliseconds."""
    if isinstance(value, datetime | date):
        return rules.due_date(value)  # type: ignore[return-value]
    if isinstance(value, bool):
        raise ValueError(DATE_MESSAGE)
    if isinstance(value, int | float):
        return _from_number(value)
    text = text_of(value).strip()
    if m := _ISO.fullmatch(text):
        return _make(int(m[1]), int(m[2]), int(m[3]))
    if m := _SLASH.fullmatch(text):
        first, second = int(m[1]), int(m[3])
        month, day = (first, second) if order == "mdy" else (second, first)
        if month > 12 and day <= 12:
            raise ValueError(f"Due date {text} does not fit this column, whose dates are {ORDER_NAMES[order]}")
        return _make(_year(m[4]), month, day)
    if m := _YMD.fullmatch(text):
        return _make(int(m[1]), int(m[3]), int(m[4]))
    lowered = text.casefold()
    if (m := _DAY_MONTH_YEAR.fullmatch(lowered)) and m[2] in _MONTHS:
        return _make(_year(m[3]), _MONTHS[m[2]], int(m[1]))
    if (m := _MONTH_DAY_YEAR.fullmatch(lowered)) and m[1] in _MONTHS:
        return _make(int(m[3]), _MONTHS[m[1]], int(m[2]))
    if _NUMBER.fullmatch(text):
        return _from_number(float(text))
    raise ValueError(DATE_MESSAGE)


def date_converter(order: Order, words_are_lenient: bool = False) -> Converter:
    """Parse with `order` for slash dates. With `words_are_lenient` (Todoist, whose DATE may say
    "every day" or "tomorrow"), text that is no date at all gives no due date and a warning."""

    def convert(value: object) -> date | None:
        if type(value) is str and not value.strip():
            return None
        try:
            return parse_date(value, order)
        except ValueError as exc:
            if words_are_lenient and str(exc) == DATE_MESSAGE:
                raise Lenient(
                    f"'{text_of(value).strip()[:60]}' is a date in words (recurring or relative), not a calendar "
                    "date: imported without a due date"
                ) from None
            raise

    return convert


@dataclass(frozen=True, slots=True)
class DateDecision:
    order: Order
    warning: str | None = None


def slash_evidence(values: Iterable[object]) -> tuple[int, int, int, bool]:
    """Counts of slash dates that only read month-first, only day-first, or either way; and whether
    they are written with dots (05.11.2026), which is a day-first habit."""
    mdy = dmy = either = dots = 0
    for value in values:
        if type(value) is not str:
            continue
        m = _SLASH.fullmatch(value.strip())
        if m is None:
            continue
        first, second = int(m[1]), int(m[3])
        dots += m[2] == "."
        if first > 12 >= second >= 1:
            dmy += 1
        elif second > 12 >= first >= 1:
            mdy += 1
        elif 1 <= first <= 12 and 1 <= second <= 12:
            either += 1
    return mdy, dmy, either, dots > 0


def decide_date_orders(
    samples: Mapping[int, Sequence[object]],
    date_columns: Mapping[int, str],
    *,
    delimiter: str | None,
    preset_order: Order | None = None,
    preset_label: str | None = None,
) -> dict[int, DateDecision]:
    """The slash-date order of each date column (index -> header), from the sampled cells of every column.

    A column whose slash dates only read one way takes that order. One that stays ambiguous follows,
    in turn: the format (Jira writes day-first), another column of the file that is unambiguous, dots
    as separators, a semicolon-separated file (what Excel writes where dates are day-first), else
    month-first; and a warning says which reading was used.
    """
    evidence = {index: slash_evidence(values) for index, values in samples.items()}
    file_order: Order | None = None
    for mdy, dmy, _either, _dots in evidence.values():
        if (mdy > 0) != (dmy > 0):
            file_order = "mdy" if mdy else "dmy"
            break
    decisions: dict[int, DateDecision] = {}
    for index, header in date_columns.items():
        mdy, dmy, either, dots = evidence.get(index, (0, 0, 0, False))
        if mdy or dmy:
            order: Order = "mdy" if mdy >= dmy else "dmy"
            warning = None
            if mdy and dmy:
                warning = (
                    f"Column '{header}' mixes month-first and day-first dates; read as {ORDER_NAMES[order]}, "
                    "which most of its dates are: the others are reported as row errors"
                )
            decisions[index] = DateDecision(order, warning)
            continue
        if preset_order is not None:
            order, reason = preset_order, f"as {preset_label} writes them"
        elif file_order is not None:
            order, reason = file_order, "as the other dates in this file are"
        elif dots:
            order, reason = "dmy", "as dates written with dots usually are"
        elif delimiter == ";":
            order, reason = "dmy", "as is usual in semicolon-separated files"
        else:
            order, reason = "mdy", "the usual reading when nothing in the file says otherwise"
        warning = None
        if either:
            example = next(v.strip() for v in samples.get(index, ()) if type(v) is str and _SLASH.fullmatch(v.strip()))
            warning = (
                f"Dates in column '{header}' such as {example} read either way; they were read as "
                f"{ORDER_NAMES[order]}, {reason}"
            )
        decisions[index] = DateDecision(order, warning)
    return decisions
