"""Files from the tools people leave, shaped like their real exports, and the value rules every format shares."""

from __future__ import annotations

import calendar
from datetime import date, datetime
from pathlib import Path

import pytest

from service.imports.files import MappingError, Options, UnreadableFile, open_reader
from service.imports.files.dates import date_converter
from service.imports.files.values import DATE_MESSAGE, Lenient, priority_converter, status_converter
from tests.imports.helpers import messages, read_all, write_bytes, write_csv, write_xlsx


def tasks(valid) -> list[tuple]:
    return [v[:6] for v in valid]


# --- the four export formats ----------------------------------------------------------------------------

TODOIST = (
    "TYPE,CONTENT,DESCRIPTION,PRIORITY,INDENT,AUTHOR,RESPONSIBLE,DATE,DATE_LANG,TIMEZONE,DURATION,DURATION_UNIT,"
    "DEADLINE,DEADLINE_LANG\r\n"
    'task,Plan the offsite @work,"Agenda:\r\n- venue\r\n- budget",1,1,Ada (41234567),,2026-12-05,en,Europe/London,'
    ",,,\r\n"
    'note,"Call the venue first, they close at 5",,,,Ada (41234567),,,,,,,,\r\n'
    ",,,,,,,,,,,,,\r\n"
    "section,Errands,,,,,,,,,,,,\r\n"
    "task,Buy stamps,,4,1,Ada (41234567),,every day,en,Europe/London,,,,\r\n"
    "task,Return the parcel,,2,1,Ada (41234567),,Dec 7 2026,en,Europe/London,30,minute,2026-12-08,en\r\n"
    ",,,,,,,,,,,,,\r\n"
    "task,Water plants,,3,2,Ada (41234567),Grace (41234568),tomorrow,en,Europe/London,,,,\r\n"
)


def test_a_todoist_export_imports_its_task_rows_with_sections_as_categories(tmp_path: Path) -> None:
    with open_reader(write_csv(tmp_path, TODOIST), "csv") as reader:
        assert reader.layout.preset is not None and reader.layout.preset.name == "todoist"
        chunks = list(reader.chunks())
    valid = [v for c in chunks for v in c.valid]
    assert tasks(valid) == [
        ("Plan the offsite @work", "Agenda:\r\n- venue\r\n- budget", "todo", 1, date(2026, 12, 5), None),
        ("Buy stamps", None, "todo", 4, None, "Errands"),
        ("Return the parcel", None, "todo", 2, date(2026, 12, 7), "Errands"),
        ("Water plants", None, "todo", 3, None, "Errands"),
    ]
    # Notes, sections and blank rows are skipped, not errors; dates in words are warnings naming the row
    assert [e for c in chunks for e in c.errors] == []
    assert sum(c.skipped for c in chunks) == 4
    assert [(w.row, w.column, w.value) for c in chunks for w in c.warnings] == [
        (6, "due_date", "every day"),
        (9, "due_date", "tomorrow"),
    ]


def test_resuming_a_todoist_import_keeps_the_section_of_the_rows_after_it(tmp_path: Path) -> None:
    path = write_csv(tmp_path, TODOIST)
    full, _, _ = read_all(path)
    for skip in range(9):
        valid, _, _ = read_all(path, size=2, skip=skip)
        assert valid == [v for v in full if v[6] > skip + 1], skip


ASANA = (
    "Task ID,Created At,Completed At,Last Modified,Name,Section/Column,Assignee,Assignee Email,Start Date,Due Date,"
    "Tags,Notes,Projects,Parent task,Blocked By (Dependencies),Blocking (Dependencies),Priority\n"
    "1204567890123456,2026-11-02,,2026-11-20,Draft the brief,To do,Ada Lovelace,ada@example.com,,2026-12-01,"
    '"Client,Urgent","Two pages.\nSend to Grace first.",Launch,,,,High\n'
    "1204567890123457,2026-11-02,2026-11-18,2026-11-18,Book the room,Doing,,,,2026-11-20,,,Launch,,,,Low\n"
    "\n"
    "1204567890123458,2026-11-03,,2026-11-03,Outline,To do,,,,,,,Launch,Draft the brief,,,\n"
)


def test_an_asana_export_is_done_when_completed_at_is_filled_in(tmp_path: Path) -> None:
    with open_reader(write_csv(tmp_path, ASANA), "csv") as reader:
        assert reader.layout.preset is not None and reader.layout.preset.name == "asana"
        assert "Column 'Projects' also looks like category; 'Section/Column' is used" in reader.warnings
        valid, errors = [], []
        for chunk in reader.chunks():
            valid += chunk.valid
            errors += chunk.errors
    assert errors == []
    assert tasks(valid) == [
        ("Draft the brief", "Two pages.\nSend to Grace first.", "todo", 2, date(2026, 12, 1), "To do"),
        ("Book the room", None, "done", 4, date(2026, 11, 20), "Doing"),
        ("Outline", None, "todo", 3, None, "To do"),
    ]
    assert [v[6] for v in valid] == [2, 3, 5]  # the quoted note spans two lines but is one row; row 4 is blank


JIRA = (
    "Summary,Issue key,Issue id,Parent id,Issue Type,Status,Project key,Project name,Project type,Project lead,"
    "Priority,Resolution,Assignee,Reporter,Creator,Created,Updated,Last Viewed,Resolved,Due Date,Labels,Labels,"
    "Description,Sprint,Sprint\n"
    "Fix login timeout,WEB-101,10101,,Bug,In Progress,WEB,Website,software,Ada,High,,Ada,Grace,Grace,"
    '05/Nov/26 9:30 AM,20/Nov/26 4:15 PM,,,12/Dec/26,backend,auth,"Users are logged out after 5 minutes.\n'
    'Steps: log in, wait.",Sprint 12,Sprint 13\n'
    "Write release notes,WEB-102,10102,10101,Sub-task,Done,WEB,Website,software,Ada,Minor,Done,Ada,Ada,Ada,"
    "06/Nov/26 10:00 AM,18/Nov/26 11:00 AM,,18/Nov/26 11:00 AM,,docs,,,Sprint 12,\n"
    "Plan Q1,WEB-103,10103,,Task,Selected for Development,WEB,Website,software,Ada,Medium,,,Ada,Ada,"
    "07/Nov/26 8:00 AM,07/Nov/26 8:00 AM,,,03/01/27,,,,,\n"
    "Old idea,WEB-104,10104,,Task,Won't Do,WEB,Website,software,Ada,Lowest,Won't Do,,Ada,Ada,"
    "07/Nov/26 8:00 AM,07/Nov/26 8:00 AM,,,,,,,,\n"
)


def test_a_jira_export_with_repeated_headers_and_jira_dates(tmp_path: Path) -> None:
    with open_reader(write_csv(tmp_path, JIRA), "csv") as reader:
        assert reader.layout.preset is not None and reader.layout.preset.name == "jira"
        # Repeated Labels and Sprint columns are not errors: one warning each
        assert "Unknown column 'Labels' ignored (2 columns)" in reader.warnings
        assert "Unknown column 'Sprint' ignored (2 columns)" in reader.warnings
        valid = [v for c in reader.chunks() for v in c.valid]
    assert tasks(valid) == [
        (
            "Fix login timeout",
            "Users are logged out after 5 minutes.\nSteps: log in, wait.",
            "in_progress",
            2,
            date(2026, 12, 12),
            "Website",
        ),
        ("Write release notes", None, "done", 4, None, "Website"),
        ("Plan Q1", None, "todo", 3, date(2027, 1, 3), "Website"),  # Jira writes dates day-first
        ("Old idea", None, "done", 5, None, "Website"),
    ]


def _ms(day: date) -> str:
    return str(calendar.timegm(day.timetuple()) * 1000 + 4 * 3600 * 1000)  # 04:00 UTC, as ClickUp stores a day


CLICKUP_HEADER = (
    "Task ID,Task Name,Task Content,Status,Date Created,Date Created Text,Due Date,Due Date Text,Start Date,"
    "Start Date Text,Parent ID,Attachments,Assignees,Tags,Priority,List Name,Folder Name,Space Name,Time Estimated,"
    "Time Estimated Text,Checklists,Comments,Assigned Comments,Time Spent,Time Spent Text,Rolled Up Time,"
    "Rolled Up Time Text\n"
)


def test_a_clickup_export_with_millisecond_dates_and_numbered_priorities(tmp_path: Path) -> None:
    created = _ms(date(2026, 10, 1))
    content = CLICKUP_HEADER + (
        f'86b1x2y3z,Redesign landing page,"Hero, CTA and\npricing table",in progress,{created},'
        f'"Thursday, October 1st 2026",{_ms(date(2026, 12, 24))},"Thursday, December 24th 2026",,,,[],'
        '"[Ada Lovelace, Grace Hopper]","[web]",1,Website,Marketing,Team,,,[],[],[],0,0 s,0,0 s\n'
        f"86b1x2y40,Fix the footer,,to do,{created},,,,,,86b1x2y3z,[],[],[],4,Website,Marketing,Team,,,[],[],[],,,,\n"
        f"86b1x2y41,Ship it,,complete,{created},,{_ms(date(2027, 2, 1))},,,,,[],[],[],3,Launch,,Team,,,[],[],[],,,,\n"
        f"86b1x2y42,Ask legal,,open,{created},,,,,,,[],[],[],2,Launch,,Team,,,[],[],[],,,,\n"
    )
    with open_reader(write_csv(tmp_path, content), "csv") as reader:
        assert reader.layout.preset is not None and reader.layout.preset.name == "clickup"
        valid = [v for c in reader.chunks() for v in c.valid]
    assert tasks(valid) == [
        ("Redesign landing page", "Hero, CTA and\npricing table", "in_progress", 1, date(2026, 12, 24), "Website"),
        ("Fix the footer", None, "todo", 4, None, "Website"),
        ("Ship it", None, "done", 3, date(2027, 2, 1), "Launch"),
        ("Ask legal", None, "todo", 2, None, "Launch"),
    ]


def test_a_preset_can_be_named_and_recognition_turned_off(tmp_path: Path) -> None:
    # A Todoist-like file without the INDENT column is not recognised by itself...
    path = write_csv(tmp_path, "TYPE,CONTENT,PRIORITY,DATE\nsection,Home,,\ntask,Dust,1,every day\n")
    with open_reader(path, "csv") as reader:
        assert reader.layout.preset is None
    # ...but named, its rules apply
    valid, errors, _ = read_all_with(path, Options(preset="todoist"))
    assert tasks(valid) == [("Dust", None, "todo", 1, None, "Home")] and errors == []
    # And "none" matches headers by name only, even for a real Todoist file
    with open_reader(write_csv(tmp_path, TODOIST, name="t.csv"), "csv", Options(preset="none")) as reader:
        assert reader.layout.preset is None


def read_all_with(path: Path, options: Options, kind: str = "csv"):
    with open_reader(path, kind, options) as reader:
        chunks = list(reader.chunks())
    return [v for c in chunks for v in c.valid], [e for c in chunks for e in c.errors], chunks


# --- columns matched by meaning, explicit mapping ---------------------------------------------------------


def test_headers_match_by_meaning_ignoring_case_spaces_punctuation_and_accents(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path, "TASK NAME?,  notes ,Done?,Impórtance,due-on,Bucket\nCall Bob,ring twice,x,urgent,2026-12-01,Home\n"
    )
    with open_reader(path, "csv") as reader:
        matched = [(c.header, c.field, c.matched) for c in reader.layout.match.columns]
        valid = [v for c in reader.chunks() for v in c.valid]
    assert matched == [
        ("TASK NAME?", "title", "synonym"),
        ("  notes ", "description", "synonym"),
        ("Done?", "status", "synonym"),
        ("Impórtance", "priority", "synonym"),
        ("due-on", "due_date", "synonym"),
        ("Bucket", "category", "synonym"),
    ]
    assert tasks(valid) == [("Call Bob", "ring twice", "done", 1, date(2026, 12, 1), "Home")]


def test_synonyms_for_every_field(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "Task Name,Details,State,Priority,Deadline,List Name\nA,d,Doing,Lowest,2026-01-02,L\n")
    valid, errors, _ = read_all(path)
    assert tasks(valid) == [("A", "d", "in_progress", 5, date(2026, 1, 2), "L")] and errors == []


def test_an_explicit_mapping_overrides_the_matching(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "Name,Thing,When,Owner\nAda,Write the plan,2026-12-01,me\n")
    options = Options(mapping={"Thing": "title", "Name": None, "When": "due_date"})
    with open_reader(path, "csv", options) as reader:
        matched = [(c.header, c.field, c.matched) for c in reader.layout.match.columns]
        valid = [v for c in reader.chunks() for v in c.valid]
    assert matched == [
        ("Name", None, None),
        ("Thing", "title", "explicit"),
        ("When", "due_date", "explicit"),
        ("Owner", None, None),
    ]
    assert tasks(valid) == [("Write the plan", None, "todo", 3, date(2026, 12, 1), None)]


def test_a_mapping_naming_a_header_the_file_does_not_have_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "Task,Due\nA,2026-01-01\n")
    with pytest.raises(MappingError) as caught:
        open_reader(path, "csv", Options(mapping={"Task": "title", "Deadline": "due_date"}))
    assert caught.value.errors == [{"field": "mapping.Deadline", "message": "No column 'Deadline' in the header row"}]


# --- header row below row 1 -------------------------------------------------------------------------------


def test_a_title_line_and_blank_rows_above_the_header_in_csv(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "Team tasks (exported 2026-12-01)\n\n,,\nTask,Priority,Due\nA,High,2026-12-05\nB,9,\n")
    with open_reader(path, "csv") as reader:
        assert reader.header_row == 4
        chunks = list(reader.chunks())
    assert [(v[0], v[3], v[6]) for c in chunks for v in c.valid] == [("A", 2, 5)]
    assert messages([e for c in chunks for e in c.errors]) == [(6, "priority", "Priority must be from 1 to 5")]


def test_a_title_line_above_the_header_in_xlsx_keeps_the_sheets_row_numbers(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path,
        [["Q4 plan", None, None], [None, None, None], ["Task", "Due", "Importance"],
         ["Book venue", datetime(2026, 12, 5, 9, 30), "High"], ["Order food", "Dec 9, 2026", "p7"]],
    )  # fmt: skip
    with open_reader(path, "xlsx") as reader:
        assert reader.header_row == 3
        chunks = list(reader.chunks())
    assert [(v[0], v[3], v[4], v[6]) for c in chunks for v in c.valid] == [("Book venue", 2, date(2026, 12, 5), 4)]
    assert [(e.row, e.column) for c in chunks for e in c.errors] == [(5, "priority")]


def test_no_title_column_in_the_first_20_rows_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "".join(f"line {i}\n" for i in range(25)) + "title\nA\n")
    with pytest.raises(UnreadableFile, match="no 'title' column"):
        open_reader(path, "csv")


# --- text encodings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_excel_unicode_text_in_utf16_with_a_bom(tmp_path: Path, codec: str) -> None:
    bom = b"\xff\xfe" if codec == "utf-16-le" else b"\xfe\xff"
    text = "Title\tCategory\tDue\r\nCafé crème\tKüche\t5 Dec 2026\r\n日本語のタスク\t\t\r\n"
    path = write_bytes(tmp_path, bom + text.encode(codec), name="tasks.txt")
    with open_reader(path, "csv") as reader:
        assert (reader.encoding, reader.delimiter) == (codec, "\t")
        valid = [v for c in reader.chunks() for v in c.valid]
    assert tasks(valid) == [
        ("Café crème", None, "todo", 3, date(2026, 12, 5), "Küche"),
        ("日本語のタスク", None, "todo", 3, None, None),
    ]


# --- value rules ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["to do", "Open", "BACKLOG", "new", "Not Started", "todo", ""], "todo"),
        (["In Progress", "doing", "started", "in review", "in_progress", "in-progress"], "in_progress"),
        (["done", "Closed", "resolved", "complete", "Completed"], "done"),
    ],
)
def test_status_words(words: list[str], expected: str) -> None:
    convert = status_converter("words")
    assert {convert(w) for w in words} == {expected}


def test_done_flags_only_in_a_done_column() -> None:
    flag = status_converter("flag")
    assert [flag(v) for v in ("true", "YES", "x", "✓", True, "no", "FALSE", "", "done")] == [
        "done", "done", "done", "done", "done", "todo", "todo", "todo", "done",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="Status must be one of"):
        status_converter("words")("yes")
    assert status_converter("filled")("2026-11-18") == "done"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[(w, 1) for w in ("Highest", "urgent", "CRITICAL", "blocker", "p1", "1")],
        *[(w, 2) for w in ("High", "P2", "2.0")],
        *[(w, 3) for w in ("medium", "Normal", "p3", "")],
        *[(w, 4) for w in ("low", "p4", 4)],
        *[(w, 5) for w in ("Lowest", "trivial", "none", "5")],
    ],
)
def test_priority_words(value: object, expected: int) -> None:
    assert priority_converter()(value) == expected


@pytest.mark.parametrize("value", ["someday", "6", "0", "p5", "2.5", True])
def test_priorities_that_mean_nothing_are_row_errors(value: object) -> None:
    with pytest.raises(ValueError, match="Priority must be"):
        priority_converter()(value)


def _unix(day: date, hour: int = 12) -> int:
    return calendar.timegm(day.timetuple()) + hour * 3600


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-05", date(2026, 12, 5)),
        ("2026-12-05T23:30:00+05:00", date(2026, 12, 5)),  # a date-time is its date, as written
        ("2026-12-05 08:00", date(2026, 12, 5)),
        ("2026-12-05T08:00:00.123Z", date(2026, 12, 5)),
        ("Dec 5, 2026", date(2026, 12, 5)),
        ("December 5th 2026", date(2026, 12, 5)),
        ("Saturday, December 5th 2026", date(2026, 12, 5)),
        ("5 Dec 2026", date(2026, 12, 5)),
        ("12/Dec/26", date(2026, 12, 12)),
        ("05/Nov/26 9:30 AM", date(2026, 11, 5)),
        ("2026/12/05", date(2026, 12, 5)),
        ("46361", date(2026, 12, 5)),  # an Excel serial in a CSV file
        ("46361.75", date(2026, 12, 5)),
        (str(_unix(date(2026, 12, 5))), date(2026, 12, 5)),  # Unix seconds
        (str(_unix(date(2026, 12, 5)) * 1000), date(2026, 12, 5)),  # Unix milliseconds
        (46361, date(2026, 12, 5)),
        (datetime(2026, 12, 5, 18), date(2026, 12, 5)),
    ],
)
def test_date_spellings(value: object, expected: date) -> None:
    assert date_converter("mdy")(value) == expected


@pytest.mark.parametrize("value", ["soon", "2026-02-30", "31/31/2026", "Smarch 5, 2026", "123456", "2026-13-01"])
def test_dates_that_are_not_dates_are_row_errors(value: str) -> None:
    with pytest.raises(ValueError, match="Due date must be"):
        date_converter("mdy")(value)


def test_todoist_dates_in_words_are_warnings_not_errors() -> None:
    with pytest.raises(Lenient):
        date_converter("mdy", words_are_lenient=True)("every day")
    with pytest.raises(ValueError, match="real date"):  # an impossible date is still an error
        date_converter("mdy", words_are_lenient=True)("2026-02-30")
    with pytest.raises(ValueError, match="Due date must be") as plain:  # without the Todoist rule: a row error
        date_converter("mdy")("every day")
    assert str(plain.value) == DATE_MESSAGE and not isinstance(plain.value, Lenient)


# --- slash dates, decided per column ----------------------------------------------------------------------


def _due_dates(tmp_path: Path, text: str) -> tuple[list[date | None], list[str], list[tuple]]:
    with open_reader(write_csv(tmp_path, text), "csv") as reader:
        warnings = reader.warnings
        chunks = list(reader.chunks())
    return [v[4] for c in chunks for v in c.valid], warnings, messages([e for c in chunks for e in c.errors])


def test_a_column_with_a_month_first_date_is_month_first(tmp_path: Path) -> None:
    dates, warnings, errors = _due_dates(tmp_path, "title,due\na,03/04/2026\nb,12/23/2026\n")
    assert dates == [date(2026, 3, 4), date(2026, 12, 23)] and warnings == [] and errors == []


def test_a_column_with_a_day_first_date_is_day_first(tmp_path: Path) -> None:
    dates, warnings, errors = _due_dates(tmp_path, "title,due\na,03/04/2026\nb,23/12/2026\n")
    assert dates == [date(2026, 4, 3), date(2026, 12, 23)] and warnings == [] and errors == []


def test_each_column_is_decided_on_its_own(tmp_path: Path) -> None:
    # Created is day-first (25/11), Due alone is ambiguous: it follows the file's other dates, with a warning
    dates, warnings, _ = _due_dates(tmp_path, "title,created,due\na,25/11/2026,03/04/2026\n")
    assert dates == [date(2026, 4, 3)]
    assert warnings[1:] == [
        "Dates in column 'due' such as 03/04/2026 read either way; they were read as day-first (DD/MM/YYYY), "
        "as the other dates in this file are"
    ]


@pytest.mark.parametrize(
    ("text", "expected", "reading"),
    [
        ("title,due\na,03/04/2026\n", date(2026, 3, 4), "month-first (MM/DD/YYYY), the usual reading"),
        ("title;due\na;03/04/2026\n", date(2026, 4, 3), "day-first (DD/MM/YYYY), as is usual in semicolon"),
        ("title,due\na,03.04.2026\n", date(2026, 4, 3), "day-first (DD/MM/YYYY), as dates written with dots"),
    ],
)
def test_an_ambiguous_column_is_read_as_the_file_suggests_with_a_warning(
    tmp_path: Path, text: str, expected: date, reading: str
) -> None:
    dates, warnings, _ = _due_dates(tmp_path, text)
    assert dates == [expected]
    assert len(warnings) == 1 and reading in warnings[0] and "03" in warnings[0]


def test_a_mixed_column_takes_the_reading_most_dates_fit_and_reports_the_others(tmp_path: Path) -> None:
    dates, warnings, errors = _due_dates(tmp_path, "title,due\na,12/23/2026\nb,12/24/2026\nc,23/12/2026\n")
    assert dates == [date(2026, 12, 23), date(2026, 12, 24)]
    assert "mixes month-first and day-first" in warnings[0]
    assert errors == [(4, "due_date", "Due date 23/12/2026 does not fit this column, whose dates are month-first "
                                      "(MM/DD/YYYY)")]  # fmt: skip


def test_the_date_reading_is_decided_from_the_start_so_every_resume_decides_the_same(tmp_path: Path) -> None:
    # Given 2,500 ambiguous dates, and only then one that can only be day-first (past the sample)
    rows = [f"t{i},0{i % 9 + 1}/0{i % 7 + 1}/2026" for i in range(2500)] + ["late,25/12/2026"]
    path = write_csv(tmp_path, "title,due\n" + "\n".join(rows) + "\n")
    full_valid, full_errors, _ = read_all(path, size=400)
    # Then the reading is month-first (from the sample), and the late row is an error saying so
    assert full_valid[0][4] == date(2026, 1, 1) and full_valid[1][4] == date(2026, 2, 2)
    assert messages(full_errors) == [(2502, "due_date", full_errors[0].message)]
    assert "month-first" in full_errors[0].message
    # And a worker resuming from any checkpoint reads the rest exactly the same way
    for skip in (400, 1200, 2000, 2499):
        valid, errors, _ = read_all(path, size=400, skip=skip)
        assert valid == [v for v in full_valid if v[6] > skip + 1]
        assert errors == full_errors


# --- the README's walk-through files ---------------------------------------------------------------------

EXAMPLES = Path(__file__).parents[3] / "examples"


def test_the_example_files_import_as_the_readme_says() -> None:
    with open_reader(EXAMPLES / "hand-made.xlsx", "xlsx") as reader:
        assert (reader.header_row, reader.layout.match.unmatched) == (3, ["When", "Who"])
    options = Options(mapping={"When": "due_date", "Who": None})
    valid, errors, _ = read_all_with(EXAMPLES / "hand-made.xlsx", options, kind="xlsx")
    assert errors == [] and [v[4] for v in valid] == [date(2026, 11, 28), date(2026, 12, 10), date(2026, 12, 1), None]
    valid, errors, chunks = read_all(EXAMPLES / "todoist-export.csv")
    assert len(valid) == 4 and errors == [] and [v[5] for v in valid][1:] == ["Errands"] * 3
    assert len([w for c in chunks for w in c.warnings]) == 2
    valid, errors, chunks = read_all(EXAMPLES / "bad-rows.csv")
    assert (len(valid), sum(c.failed for c in chunks)) == (2, 3)
    assert [(e.column, e.value) for e in errors] == [
        ("title", ""), ("status", "someday"), ("priority", "p9"), ("due_date", "2026-02-30"),
    ]  # fmt: skip
