"""Which column holds which task field: header names matched by meaning, presets, an explicit mapping.

Headers are compared normalised (case, spaces, punctuation and accents ignored: "Due Date", "due_date"
and "DUE-DATE" are one name) against each field's synonyms. A recognised export format (`presets.py`)
names its own columns first; an explicit mapping from the client overrides both. The header row is the
first of the file's first 20 rows that yields a title column, so a title line or blank rows above it
are fine. All of this runs once per file, on the header row; rows never see it.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from service.imports.files.cells import as_text, is_blank
from service.imports.files.exceptions import EmptyFile, MappingError, UnreadableFile
from service.imports.files.presets import NO_PRESET, PRESETS, Preset, detect

FIELDS = ("title", "description", "status", "priority", "due_date", "category")
HEADER_SEARCH_ROWS = 20
MAX_WARNED_COLUMNS = 20
MAX_MAPPING_ENTRIES = 500
Matched = Literal["exact", "synonym", "preset", "explicit"]

# The header names each field is known by, best first: when two columns mean the same field, the one
# with the better name wins and the other is ignored with a warning.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "title": ("Title", "Name", "Task", "Task Name", "Summary", "Subject", "Content", "To do"),
    "description": ("Description", "Notes", "Details", "Task Content", "Body"),
    "due_date": ("Due Date", "Due", "Deadline", "Date", "Due On"),
    "priority": ("Priority", "Importance"),
    "status": ("Status", "State", "Done", "Done?", "Completed", "Completed At", "Progress"),
    "category": (
        "Category", "List", "List Name", "Section", "Section/Column", "Project", "Projects", "Folder", "Bucket",
    ),
}  # fmt: skip


def normalise(cell: str) -> str:
    """`  Due-Date ` -> `duedate`, `Catégorie` -> `categorie`: letters and digits only, casefolded."""
    decomposed = unicodedata.normalize("NFKD", cell.casefold())
    return "".join(ch for ch in decomposed if ch.isalnum())


_EXACT = {normalise(f): f for f in FIELDS}
_KNOWN: dict[str, tuple[str, int]] = {
    normalise(name): (f, rank) for f, names in SYNONYMS.items() for rank, name in enumerate(names)
}


@dataclass(frozen=True, slots=True)
class Column:
    index: int  # 0-based position in the row
    header: str  # as written in the file
    field: str | None
    matched: Matched | None


@dataclass(slots=True)
class HeaderMatch:
    columns: list[Column]
    index: dict[str, int]  # field -> column index, for the fields the file has
    preset: Preset | None
    warnings: list[str] = field(default_factory=list)

    @property
    def unmatched(self) -> list[str]:
        return [c.header for c in self.columns if c.field is None and c.matched is None and c.header.strip()]


@dataclass(frozen=True, slots=True)
class Options:
    """What the client said about the file: an explicit mapping and/or a preset ("none": recognise no format)."""

    mapping: dict[str, str | None] | None = None
    preset: str | None = None


def parse_options(mapping: str | None, preset: str | None) -> Options:
    """The `mapping` and `preset` form fields, checked; MappingError (HTTP 422) names what is wrong."""
    return Options(parse_mapping(mapping), parse_preset(preset))


def parse_preset(text: str | None) -> str | None:
    name = (text or "").strip().lower()
    if name in ("", "auto"):
        return None
    if name not in PRESETS and name != NO_PRESET:
        choices = ", ".join([*PRESETS, NO_PRESET])
        raise MappingError(f"Unknown preset '{text}'", [{"field": "preset", "message": f"Must be one of {choices}"}])
    return name


def parse_mapping(text: str | None) -> dict[str, str | None] | None:
    if text is None or not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise MappingError(
            "The mapping must be a JSON object of source header -> field name (or null to ignore the column)",
            [{"field": "mapping", "message": "Must be a JSON object"}],
        )
    if len(data) > MAX_MAPPING_ENTRIES:
        raise MappingError(
            f"The mapping may name at most {MAX_MAPPING_ENTRIES} columns",
            [{"field": "mapping", "message": "Too many entries"}],
        )
    problems = []
    sources: dict[str, str] = {}
    for source, target in data.items():
        if not source.strip():
            problems.append({"field": "mapping", "message": "A source header must not be empty"})
        elif target is not None and target not in FIELDS:
            problems.append(
                {
                    "field": f"mapping.{source}",
                    "message": f"Unknown field {json.dumps(target)}: use one of {', '.join(FIELDS)} or null",
                }
            )
        elif target is not None and target in sources:
            problems.append(
                {"field": f"mapping.{source}", "message": f"'{sources[target]}' is already mapped to {target}"}
            )
        elif target is not None:
            sources[target] = source
    if problems:
        raise MappingError("The mapping names " + "; ".join(p["message"] for p in problems), problems)
    return data


def match(cells: Sequence[str], preset: Preset | None, explicit: Mapping[str, str | None] | None) -> HeaderMatch:
    """Which field each header cell holds. Ties between columns go to the better name, then the first."""
    names = [normalise(c.lstrip("\ufeff")) for c in cells]
    chosen: dict[int, tuple[str | None, Matched | None]] = {}
    if explicit:
        for i, cell in enumerate(cells):
            key = _explicit_key(cell, names[i], explicit)
            if key is not None:
                chosen[i] = (explicit[key], "explicit" if explicit[key] else None)
    taken = {f for f, _ in chosen.values() if f}
    best: dict[str, tuple[int, int, Matched]] = {}  # field -> (rank, index, how)
    shadowed: list[tuple[int, str]] = []
    structural = {preset.sections[0]} if preset is not None and preset.sections else set()
    for i, name in enumerate(names):
        if i in chosen or not name:
            continue
        if name in structural:  # Todoist's TYPE: read by the preset's row rules, no field of its own
            chosen[i] = (None, "preset")
            continue
        candidate: tuple[str, int, Matched] | None = None
        if preset is not None and name in preset.columns:
            candidate = (preset.columns[name], -1, "preset")
        elif name in _EXACT:
            candidate = (_EXACT[name], -1, "exact")
        elif name in _KNOWN:
            f, rank = _KNOWN[name]
            candidate = (f, rank, "synonym")
        if candidate is None:
            continue
        f, rank, how = candidate
        if f in taken:
            shadowed.append((i, f))
            continue
        if f in best and best[f][:2] <= (rank, i):
            shadowed.append((i, f))
            continue
        if f in best:
            shadowed.append((best[f][1], f))
        best[f] = (rank, i, how)
    for f, (_rank, i, how) in best.items():
        chosen[i] = (f, how)
    columns = [Column(i, cell, *chosen.get(i, (None, None))) for i, cell in enumerate(cells)]
    index = {c.field: c.index for c in columns if c.field is not None}
    warnings = [
        f"Column '{_short(cells[i].strip(), 50)}' also looks like {f}; '{_short(cells[index[f]].strip(), 50)}' is used"
        for i, f in sorted(shadowed)
        if f in index
    ]
    unknown: dict[str, int] = {}
    quiet = set(chosen) | {i for i, _ in shadowed}  # mapped, ignored on request, or already warned about
    for c in columns:
        if c.field is None and names[c.index] and c.index not in quiet:
            unknown[c.header.strip()] = unknown.get(c.header.strip(), 0) + 1
    for name, count in list(unknown.items())[:MAX_WARNED_COLUMNS]:
        repeated = f" ({count} columns)" if count > 1 else ""
        warnings.append(f"Unknown column '{_short(name, 50)}' ignored{repeated}")
    if len(unknown) > MAX_WARNED_COLUMNS:
        warnings.append(f"{len(unknown) - MAX_WARNED_COLUMNS} more unknown columns ignored")
    return HeaderMatch(columns, index, preset, warnings)


def _explicit_key(cell: str, name: str, explicit: Mapping[str, str | None]) -> str | None:
    stripped = cell.lstrip("\ufeff").strip()
    if stripped in explicit:
        return stripped
    for key in explicit:  # the mapping is small; this runs once per header cell
        if normalise(key) == name and name:
            return key
    return None


def find_header(rows: Sequence[Sequence[object]], options: Options | None = None) -> tuple[int, HeaderMatch]:
    """The header row (0-based index into `rows`) and its match: the first of the first 20 rows that
    yields a title column. Raises MappingError for mapping keys that are not headers of that row, and
    UnreadableFile when no row qualifies."""
    options = options or Options()
    forced = PRESETS.get(options.preset or "")
    first: list[str] | None = None
    for i, raw in enumerate(rows[:HEADER_SEARCH_ROWS]):
        if is_blank(raw):
            continue
        cells = [as_text(c) for c in raw]
        first = first if first is not None else cells
        preset = forced
        if preset is None and options.preset != NO_PRESET:
            preset = detect(normalise(c) for c in cells)
        found = match(cells, preset, options.mapping)
        if "title" in found.index:
            _check_mapping_keys(cells, options.mapping)
            return i, found
        if len(found.index) >= 2:
            # A header row without a title column: searching on would take a data row for the header
            # (a status "To do" reads like the title synonym "To do").
            first = cells
            break
    if first is None and all(is_blank(r) for r in rows):
        raise EmptyFile("The file is empty: a header row with a title column is required.")
    first = first or []
    if options.mapping:
        _check_mapping_keys(first, options.mapping, looked_in=HEADER_SEARCH_ROWS)
    found_cells = ", ".join(f"'{_short(c.strip(), 40)}'" for c in first[:10] if c.strip()) or "nothing"
    raise UnreadableFile(
        "The file has no 'title' column: none of its first 20 rows names one. Name the column with the "
        "task's title Title (or Name, Task, Summary...), or map it with `mapping`; description, status, "
        f"priority, due_date and category are optional. Found: {found_cells}."
    )


def _check_mapping_keys(
    cells: Sequence[str], mapping: Mapping[str, str | None] | None, looked_in: int | None = None
) -> None:
    if not mapping:
        return
    names = {normalise(c.lstrip("\ufeff")) for c in cells}
    stripped = {c.lstrip("\ufeff").strip() for c in cells}
    missing = [k for k in mapping if k.strip() not in stripped and normalise(k) not in names]
    if not missing and looked_in is None:
        return
    where = f"the first {looked_in} rows" if looked_in else "the header row"
    problems = [{"field": f"mapping.{k}", "message": f"No column '{_short(k, 60)}' in {where}"} for k in missing]
    if not problems:  # every key exists but none maps a title column
        problems = [{"field": "mapping", "message": "No column is mapped to title, and none is named like one"}]
    headers = ", ".join(f"'{_short(c.strip(), 40)}'" for c in cells[:20] if c.strip())
    raise MappingError(f"{problems[0]['message']}. The header row has: {headers}.", problems)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
