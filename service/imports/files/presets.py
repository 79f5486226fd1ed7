"""The export formats of the task tools people leave, recognised by their header row.

A preset says which of the tool's columns hold which task field, and the words and date habits of that
tool that the shared rules (`values.py`, `dates.py`) do not already know. `detect` finds the preset whose signature
columns a header row has; a client can also name one with the `preset` form field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from service.imports.files.dates import Order


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    signature: frozenset[str]  # normalised headers that all appear in the tool's export
    columns: Mapping[str, str]  # normalised header -> task field
    statuses: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # extra status words
    priorities: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # extra priority words
    date_order: Order | None = None  # how the tool writes slash dates, when a column does not show it
    lenient_dates: bool = False  # a date in words is no due date and a warning, not a row error
    sections: tuple[str, str] | None = None  # (kind column, text column) of Todoist's task/section/note rows


TODOIST = Preset(
    name="todoist",
    label="Todoist",
    signature=frozenset({"type", "content", "priority", "indent"}),
    # PRIORITY 1 is Todoist's p1, the most urgent: 1-4 are taken as they are.
    columns={"content": "title", "description": "description", "priority": "priority", "date": "due_date"},
    lenient_dates=True,
    sections=("type", "content"),
)
ASANA = Preset(
    name="asana",
    label="Asana",
    signature=frozenset({"taskid", "createdat", "completedat", "lastmodified", "name"}),
    # Completed At is a status column that is `done` whenever it is filled in; Priority, when the
    # project has that custom field, is matched by its name like any other column.
    columns={
        "name": "title",
        "notes": "description",
        "duedate": "due_date",
        "sectioncolumn": "category",
        "completedat": "status",
    },
)
JIRA = Preset(
    name="jira",
    label="Jira",
    signature=frozenset({"summary", "issuekey", "issueid", "issuetype"}),
    columns={
        "summary": "title",
        "description": "description",
        "status": "status",
        "priority": "priority",
        "duedate": "due_date",
        "projectname": "category",
    },
    statuses={
        "todo": ("selected for development", "reopened", "ready", "ready for development", "to be done"),
        "in_progress": ("in development", "in testing", "testing", "code review", "review", "in qa", "qa", "blocked"),
        "done": ("won't do", "wont do", "won't fix", "cancelled", "canceled", "declined", "rejected"),
    },
    priorities={2: ("major",), 4: ("minor",)},  # the priorities of older Jira schemes
    date_order="dmy",  # 12/Dec/26, and dd/MM/yy in the same locale
)
CLICKUP = Preset(
    name="clickup",
    label="ClickUp",
    signature=frozenset({"taskid", "taskname", "taskcontent"}),
    # Priority 1 urgent, 2 high, 3 normal, 4 low: the numbers are taken as they are. Dates are Unix
    # milliseconds, which every date column accepts.
    columns={
        "taskname": "title",
        "taskcontent": "description",
        "status": "status",
        "priority": "priority",
        "duedate": "due_date",
        "listname": "category",
    },
    statuses={"in_progress": ("review", "in qa"), "done": ("closed", "complete")},
)
PRESETS: dict[str, Preset] = {p.name: p for p in (TODOIST, ASANA, JIRA, CLICKUP)}
NO_PRESET = "none"  # the `preset` value that turns recognition off: headers are matched by their names only
CHOICES = (*PRESETS, NO_PRESET)


def detect(normalised: Iterable[str]) -> Preset | None:
    present = set(normalised)
    for preset in PRESETS.values():
        if preset.signature <= present:
            return preset
    return None
