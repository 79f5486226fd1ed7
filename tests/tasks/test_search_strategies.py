"""GET /tasks?q=: the same pages whichever way a search finds them (service/tasks/search.py): through
windows of the sort's index sized from the statistics of the search index, or collected from the start
through its rarest word, or switching from one to the other between pages."""

from __future__ import annotations

import random

import pytest

from service.tasks import listing, search, statements
from service.tasks import service as tasks_service
from tests.support import db_execute
from tests.tasks.conftest import ids
from tests.tasks.test_listing import SORTS, expected_order, matches, seed_filtered


@pytest.fixture
async def analysed(ctx):
    """Statistics of the search index (as autovacuum keeps them), and the words of every q looked up again
    with them."""

    async def analyse() -> None:
        await db_execute(ctx, "ANALYZE tasks")
        tasks_service._words.clear()

    yield analyse
    tasks_service._words.clear()
    listing._shape.cache_clear()


def words(shares: list[float | None]) -> search.Words:
    queries = [f"'w{i}':*" for i in range(len(shares))]
    return search.Words(" & ".join(queries), [f"%w{i}%" for i in range(len(shares))], queries, shares)


def test_only_a_rare_word_is_looked_up_alone_in_the_search_index():
    assert words([0.2, 0.001, 0.05]).params()["indexed_words"] == "'w1':*"
    assert words([0.2, 0.001, 0.05]).params()["other_words"] == "'w0':* & 'w2':*"
    # Common words only, a single word, or no statistics: all of them, and nothing tested on the rows.
    for case in ([0.2, 0.05], [0.001], [None, 0.001]):
        params = words(case).params()
        assert (params["indexed_words"], params["other_words"]) == (params["words"], None)


def test_a_search_starts_from_the_statistics_of_its_words():
    alone = listing.shape(listing.TaskQuery.model_construct(q="x", sort="due_date", limit=20, status=())).first_page
    by_status = listing.shape(
        listing.TaskQuery.model_construct(q="x", sort="due_date", limit=20, status=("todo",))
    ).first_page
    fetch = statements.fetch_size(20)
    assert alone.start(words([0.001, 0.5])) is None  # rare: collected from the start, whatever the filters
    assert by_status.start(words([0.001])) is None
    # Without statistics, or with other filters (whose share is unknown): a first window of fixed size.
    assert alone.start(words([None])) == (alone.first, search.PROBE_PER_ROW * fetch)
    assert by_status.start(words([0.01])) == (by_status.first, search.PROBE_PER_ROW * fetch)
    # By q alone: a window to hold 1.5 pages by the share of tasks with every word, within the bound.
    for shares in ([0.5], [0.01], [0.05, 0.02]):
        first, size = alone.start(words(shares)) or (None, 0)
        assert first is statements.window_query("due_date", alone.filters, False, fetch, size)
        assert size in search.window_sizes(fetch)
        share = words(shares).share
        assert size >= 1.5 * fetch / share or size == search.WINDOW_PER_ROW_READING_TABLE * fetch


PARAMS = [
    {"q": "alpha"},
    {"q": "gamma alpha"},
    {"q": "delta", "category": "Home"},
    {"q": "beta gamma", "status": ["todo", "in_progress"]},
]


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: "+".join(p))
async def test_a_search_gives_the_same_pages_collected_from_the_start_or_read_in_windows(
    alice, ctx, analysed, statements, monkeypatch, params
):
    tasks = await seed_filtered(alice, 60, random.Random(str(params)))
    wanted = [t for t in tasks if matches(t, params)]
    assert 3 < len(wanted) < len(tasks)
    await analysed()
    assert (await tasks_service.search_words(ctx, params["q"])).known

    # Every word rare: collected from the start; none: read in windows, sized from the statistics.
    for collect_share, collected in ((1.0, True), (0.0, False)):
        monkeypatch.setattr(search, "COLLECT_SHARE", collect_share)
        for sort in SORTS:
            statements.clear()
            seen = await alice.page_through(sort=sort, limit=3, **params)
            assert ids(seen) == expected_order(wanted, sort), (collect_share, sort)
            assert all(name.startswith("list_tasks_matches") == collected for name in statements), statements


async def test_paging_switches_strategy_without_skipping_or_repeating(alice, analysed, monkeypatch):
    tasks = await seed_filtered(alice, 60, random.Random(7))
    await analysed()
    params = {"q": "alpha"}
    wanted = [t for t in tasks if matches(t, params)]
    for sort in SORTS:
        seen: list[dict] = []
        cursor = None
        for page in range(100):
            # Collected from the start on even pages, read in windows of the sort's index on odd ones.
            monkeypatch.setattr(search, "COLLECT_SHARE", 1.0 if page % 2 == 0 else 0.0)
            response = await alice.list(sort=sort, limit=2, **params, **({"cursor": cursor} if cursor else {}))
            body = response.json()
            seen += body["items"]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert ids(seen) == expected_order(wanted, sort), sort


async def test_a_rare_word_with_common_ones_is_found_through_it_and_the_others_tested(
    alice, ctx, analysed, statements, monkeypatch
):
    monkeypatch.setattr(search, "COLLECT_SHARE", 0.1)  # "résumé" is in 2 of these 32 tasks, the others in 31
    both = await alice.create(title="Résumé of the alpha beta plan")
    await alice.create(title="Résumé without the other word")
    for i in range(30):
        await alice.create(title=f"alpha {i} beta gamma")
    await analysed()

    words = await tasks_service.search_words(ctx, "alpha resume beta")
    assert words.known and words.params()["indexed_words"] == "'resume':*"
    for q in ("alpha RÉSUMÉ beta", "resum alph"):
        statements.clear()
        assert ids((await alice.list(q=q)).json()["items"]) == [both["id"]]
        assert statements == ["list_tasks_matches[-created_at,filter_q_indexed,False,None]"]
