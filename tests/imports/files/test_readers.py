"""The reader interface the import worker drives: chunks, checkpoints and resume, the same for every kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.imports.files import VALID_COLUMNS, UnreadableFile, open_reader
from tests.imports.helpers import read_all, write_csv, write_xls, write_xlsx

# 23 data rows: valid ones, bad ones (priority 9) and blank ones, in a pattern.
DATA = [[f"task {i}", "9" if i % 5 == 0 else str(i % 5)] if i % 7 else [None, None] for i in range(1, 24)]


def files(tmp_path: Path) -> dict[str, Path]:
    csv_text = "title,priority\n" + "".join(f"{r[0] or ''},{r[1] or ''}\n" for r in DATA)
    typed = [[r[0], int(r[1]) if r[1] else None] for r in DATA]
    return {
        "csv": write_csv(tmp_path, csv_text),
        "xlsx": write_xlsx(tmp_path, [["title", "priority"], *typed]),
        "xls": write_xls(tmp_path, [["title", "priority"], *typed]),
    }


@pytest.mark.parametrize("kind", ["csv", "xlsx", "xls"])
def test_resuming_from_any_checkpoint_gives_exactly_the_remaining_rows(tmp_path: Path, kind: str) -> None:
    path = files(tmp_path)[kind]
    # Given a full read in chunks of 4
    full_valid, full_errors, chunks = read_all(path, kind, size=4)
    assert [c.rows_processed for c in chunks] == [4, 8, 12, 16, 20, 23]
    assert sum(c.rows for c in chunks) == 23
    assert len(full_valid) + sum(c.failed for c in chunks) + sum(c.skipped for c in chunks) == 23
    # When the import resumes after each checkpoint (and from every other position)
    for skip in range(24):
        valid, errors, _ = read_all(path, kind, size=3, skip=skip)
        # Then it yields exactly the rows after the first `skip` data rows: none lost, none repeated
        assert valid == [v for v in full_valid if v[6] > skip + 1]
        assert errors == [e for e in full_errors if e.row > skip + 1]


@pytest.mark.parametrize("kind", ["csv", "xlsx", "xls"])
def test_every_kind_reads_the_same_rows(tmp_path: Path, kind: str) -> None:
    valid, errors, chunks = read_all(files(tmp_path)[kind], kind)
    assert len(chunks) == 1
    assert [v[0] for v in valid][:3] == ["task 1", "task 2", "task 3"]
    assert valid[0] == ("task 1", None, "todo", 1, None, None, 2)
    assert [e.row for e in errors] == [6, 11, 16, 21]  # task 5, 10, 15, 20 have priority 9
    assert chunks[0].skipped == 3  # rows 8, 15, 22 are blank
    assert chunks[0].progress == 1.0


def test_valid_rows_are_in_copy_order_with_the_row_number_last() -> None:
    assert VALID_COLUMNS == ("title", "description", "status", "priority", "due_date", "category", "row")


def test_chunk_boundaries_and_progress_on_a_larger_csv(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "title\n" + "".join(f"t{i}\n" for i in range(25_000)))
    with open_reader(path, "csv") as reader:
        chunks = list(reader.chunks(size=10_000))
    assert [len(c.valid) for c in chunks] == [10_000, 10_000, 5_000]
    assert [c.valid[0][6] for c in chunks] == [2, 10_002, 20_002]
    progress = [c.progress for c in chunks]
    assert progress == sorted(progress)
    assert 0 < progress[0] < 1
    assert progress[-1] == 1.0


def test_a_skip_beyond_the_end_yields_nothing(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "title\na\nb\n")
    assert read_all(path, skip=10)[2] == []


def test_bad_arguments_are_programming_errors(tmp_path: Path) -> None:
    path = write_csv(tmp_path, "title\na\n")
    with open_reader(path, "csv") as reader, pytest.raises(ValueError, match="size"):
        next(reader.chunks(size=0))
    with pytest.raises(ValueError, match="unknown file kind"):
        open_reader(path, "ods")


def test_a_missing_title_column_fails_the_same_way_for_every_kind(tmp_path: Path) -> None:
    for path, kind in [
        (write_csv(tmp_path, "owner\nx\n"), "csv"),
        (write_xlsx(tmp_path, [["owner"], ["x"]]), "xlsx"),
        (write_xls(tmp_path, [["owner"], ["x"]]), "xls"),
    ]:
        with pytest.raises(UnreadableFile, match="no 'title' column"):
            open_reader(path, kind)
