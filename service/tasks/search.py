"""GET /tasks?q=: what a q means (its words, as the search index holds them, and their shares of tasks)
and how a search is read: through which windows of the sort's index, or by collecting its matches.

A search needs the table (~4-6 us a row at 1M tasks, as the sort's order is not the table's; only rows
that pass the other filters are read from it), so unlike other filters' windows (listing.py) its windows
are sized from what is known of its words. It starts from what ANALYZE knows of them (search-words: the
share of tasks with a word beginning with each, among the search index's most common words): with a rare
word (under COLLECT_SHARE, or not among them), it collects the matches from the start, through that word
alone (filter-q-indexed); else it reads a first window (first_window), sized from the share of tasks with
every word when q is the only filter, of PROBE_PER_ROW rows per row of the page otherwise (or without
statistics). If that holds too few matches, it reads on from there in windows sized from the rate of
matches found and the statistics (next_window), up to SEARCH_WINDOWS, unless that rate says the matches
are rare, and then collecting them costs less. Measured at 1M tasks: tests/perf/bench_lists (figures in
README.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, cast

from service.tasks import statements
from service.tasks.statements import fetch_size

# Rows per row of the page: at most of the table in a search's windows; of a search's first window.
WINDOW_PER_ROW_READING_TABLE = 250
PROBE_PER_ROW = 25
# How many windows a search reads at most before it collects the matches (each is sized from the rate of
# matches in those before it, so a second seldom falls short; a third finishes the page when it does).
SEARCH_WINDOWS = 3
# How many rows of the table the statistics' share of tasks with every word of q weighs as, against the
# rate of matches that windows found (which is that user's own, but from few rows: a first window with
# none of a word in 1% of tasks would otherwise send it to collect 10,000 matches).
PRIOR_ROWS = 2000
# A search whose rarest word is in fewer tasks than this collects its matches from the start (first_window):
# measured at 1M tasks, a window costs ~4-6 us a row (the table, read in the sort's order) and collecting
# ~10-15 us a match (the search index, then the table for the sort key), even at ~0.3%.
COLLECT_SHARE = 0.003


@dataclass(frozen=True)
class Words:
    """The words of a `q` as the search index holds them (sql/queries/tasks.sql, search-words)."""

    query: str | None  # a tsquery; None when q has no word at all (nothing can match)
    patterns: list[str]
    word_queries: list[str] = field(default_factory=list)  # each word's own tsquery
    shares: list[float | None] = field(default_factory=list)  # each word's share of tasks (None: unknown)

    @property
    def known(self) -> bool:
        """Whether there are statistics of the words (then share and rarest are estimates)."""
        return bool(self.shares) and all(share is not None for share in self.shares)

    @property
    def share(self) -> float:
        """The share of tasks with every word, taken as independent (when known)."""
        return math.prod(cast(list[float], self.shares))

    @property
    def rarest(self) -> int:
        return min(range(len(self.shares)), key=lambda i: cast(float, self.shares[i])) if self.known else -1

    @property
    def rare(self) -> bool:
        """Whether the statistics say the rarest word is in under COLLECT_SHARE of tasks (False without)."""
        return self.known and cast(float, self.shares[self.rarest]) < COLLECT_SHARE

    def params(self) -> dict[str, Any]:
        """The parameters of filter-q and filter-q-indexed: only the rarest word is looked up in the index
        when it is rare (under COLLECT_SHARE), the others are tested on the rows it gives; else (or without
        statistics) all are looked up in the index, whose entries of common words cost less to intersect
        than their rows to test."""
        if len(self.word_queries) < 2 or not self.rare:
            indexed, others = self.query, None
        else:
            rarest = self.rarest
            indexed = self.word_queries[rarest]
            others = " & ".join(q for i, q in enumerate(self.word_queries) if i != rarest)
        return {"words": self.query, "patterns": self.patterns, "indexed_words": indexed, "other_words": others}


def first_window(filters: frozenset[str], fetch: int, probe: int, words: Words | None) -> int | None:
    """The rows of a search's first window (`probe` without statistics), or None when its matches are
    better collected from the start: its rarest word is in under COLLECT_SHARE of tasks, by the statistics
    of the search index. A search by q alone with statistics sizes its first window from them, to hold 1.5
    times the page by the share of tasks with every word (up to WINDOW_PER_ROW_READING_TABLE rows per row
    of the page: it reads on if need be, as after a first window); with other filters, whose share is
    unknown, it reads `probe` rows (PROBE_PER_ROW per row of the page) first."""
    if words is None or not words.known:
        return probe
    if words.rare:
        return None
    if filters != {"filter_q"}:
        return probe
    wanted = 1.5 * fetch / max(words.share, 1e-9)
    sizes = [size for size in window_sizes(fetch) if size <= WINDOW_PER_ROW_READING_TABLE * fetch]
    return next((size for size in sizes if size >= wanted), sizes[-1])


def next_window(limit: int, read: int, hits: int, passed: int, words: Words | None = None) -> int | None:
    """The size of the window a search reads on with, after windows of `read` rows in all, in which
    `passed` rows passed the filters other than q and `hits` matched q too; None when the matches are
    better collected. From the rate of matches found (one more than found, so a window with none still
    tells something of how rare they are; with statistics of the words, their share weighs as much as
    PRIOR_ROWS rows more), the window is made to hold 1.5 times the matches still needed, of a fixed set
    of sizes, and must read at most WINDOW_PER_ROW rows and WINDOW_PER_ROW_READING_TABLE of the table per
    row of the page (beyond, collecting the matches costs less; unless the statistics say that every
    word is common: then collecting costs more, and the largest window that fits is read if two such
    would hold the matches needed, within 4 times the bound of the table's rows)."""
    fetch = fetch_size(limit)
    if words is not None and words.known:
        rate = (hits + words.share * PRIOR_ROWS) / (passed + PRIOR_ROWS)
    else:
        rate = (hits + 1) / max(passed, 1)
    table_rows = 1.5 * (limit + 1 - hits) / rate  # rows read from the table
    rows = table_rows * read / max(passed, 1)
    bound = WINDOW_PER_ROW_READING_TABLE * fetch
    within = [size for size in window_sizes(fetch) if size * passed <= bound * read]
    fits = [size for size in within if size >= rows]
    if fits:
        return fits[0]
    common = words is not None and words.known and not words.rare
    # Reading on costs ~0.3-1 us a row of the index and ~5-40 us one of the table (more when read by id,
    # after other filters): with other filters keeping few rows, more than collecting even common words.
    return within[-1] if common and within and rows <= min(2 * within[-1], 4 * bound) else None


def window_sizes(fetch: int) -> list[int]:
    """The sizes a search's windows after the first may have (a fixed set: each is a statement of its own)."""
    largest = statements.WINDOW_PER_ROW * fetch
    size = PROBE_PER_ROW * fetch
    sizes = {size, WINDOW_PER_ROW_READING_TABLE * fetch, largest}
    while size < largest:
        size *= 2
        sizes.add(min(size, largest))
    return sorted(sizes)
