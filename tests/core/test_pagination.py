"""The keyset-page helper every listing uses: a page, its cursor, and cursors that are refused."""

from __future__ import annotations

from datetime import datetime

import pytest

from service.pagination import InvalidCursor, Keyset, encode

SECRET = "test-secret-key-that-is-long-enough-0123456789"  # pragma: allowlist secret (a key for this test only)


def position(values: list[object]) -> tuple[datetime, int]:
    when, number = values
    if not isinstance(number, int):
        raise TypeError(number)
    return datetime.fromisoformat(str(when)), number


def test_a_page_shows_limit_rows_and_a_cursor_that_reads_back_the_last_one() -> None:
    # Given a listing that fetched one row more than the page shows
    keyset = Keyset(SECRET, b"alice:imports")
    rows = [(datetime(2026, 1, day), day) for day in (3, 2, 1)]
    # When the page is made
    page = keyset.page(rows, 2, lambda row: [row[0].isoformat(), row[1]])
    # Then it shows two rows, and its cursor reads back as the position of the second
    assert page.items == rows[:2]
    assert page.next_cursor is not None
    assert keyset.position(page.next_cursor, position) == rows[1]


def test_the_last_page_has_no_cursor_and_no_cursor_is_the_first_page() -> None:
    keyset = Keyset(SECRET, b"alice:imports")
    assert keyset.page([1, 2], 2, lambda row: [row]) == ([1, 2], None)
    assert keyset.position(None, position) is None


def test_a_cursor_of_another_listing_or_caller_is_refused() -> None:
    cursor = Keyset(SECRET, b"alice:imports").page([1, 2], 1, lambda row: [row]).next_cursor
    assert cursor is not None
    for other in (Keyset(SECRET, b"bob:imports"), Keyset(SECRET + "x", b"alice:imports")):
        with pytest.raises(InvalidCursor, match="belongs to another query"):
            other.position(cursor, lambda values: values)
    with pytest.raises(InvalidCursor, match="tampered"):
        Keyset(SECRET, b"alice:imports").position(cursor[:-2] + "AA", lambda values: values)


def test_a_signed_cursor_whose_values_do_not_read_is_a_400_not_a_crash() -> None:
    keyset = Keyset(SECRET, b"alice:imports")
    for values in ([], ["not a date", 1], ["2026-01-01", "not a number"]):
        with pytest.raises(InvalidCursor, match="no longer valid") as refused:
            keyset.position(encode(SECRET, b"alice:imports", values), position)
        assert refused.value.status == 400
