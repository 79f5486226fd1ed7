"""Throwaway databases filled with realistic tasks through COPY, for the benchmark and the EXPLAIN survey."""

from __future__ import annotations

import random
import shutil
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg

from service.migrate import migrate
from tests.perf.common import migrations_until
from tests.support import recreate_database

WORDS = (  # noqa: SIM905 (readable as text)
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
    "quebec romeo sierra tango uniform victor whiskey xray yankee zulu report invoice meeting review "
    "deploy release budget client draft email call plan design test fix update write read order ship "
    "garden kitchen laundry groceries doctor dentist school homework taxes insurance car bike train"
).split()
RARE_WORD = "zanzibar"  # in about 1% of tasks: a selective `q`
# Words planted in the titles of a known share of tasks (search reads titles only, migration 0012), so
# that search can be measured per kind of word: the other words of WORDS are each in ~5% of titles.
PLANTED = {"quarterly": 0.15, "forecast": 0.05, RARE_WORD: 0.01, "kilimanjaro": 0.001, "xylophone": 0.00002,
           "Résumé": 0.01}  # fmt: skip
# And one word in each task from a long tail of 5,000 made-up ones (each in ~0.02% of tasks), as real task
# text has thousands of words: without them PostgreSQL keeps no statistics of word prefixes (it needs 100
# words) and guesses 2% for any search.
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
TAIL = sorted({"".join(random.Random(n).choices(_SYLLABLES, k=3)) for n in range(6_000)})[:5_000]
STATUSES = ("todo", "todo", "in_progress", "done", "done")
CATEGORIES = [f"Category {i:02d}" for i in range(20)]
COLUMNS = ("id", "user_id", "title", "description", "status", "priority", "due_date", "category_id", "created_at")


async def create_database(url: str, until: str | None = None) -> None:
    """Drop and re-create the database of `url`, then migrate it (up to the migration `until` if given)."""
    await recreate_database(url)
    if until is None:
        await migrate(url)
        return
    directory = migrations_until(until)
    try:
        await migrate(url, directory)
    finally:
        shutil.rmtree(directory)


async def create_user(conn: asyncpg.Connection, email: str) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO accounts (email, password_hash, is_active, activated_at) "
        "VALUES ($1, 'x', true, now()) RETURNING id",
        email,
    )


def _rows(user_id: uuid.UUID, count: int, category_ids: list[uuid.UUID], rng: random.Random):
    now = datetime.now(UTC)
    today = now.date()
    # Zipf-like category shares: the first few categories hold most tasks; 20% have none.
    weights = [1 / (i + 1) for i in range(len(category_ids))]
    for i in range(count):
        words = [*rng.choices(WORDS, k=rng.randint(2, 6)), rng.choice(TAIL)]
        text = rng.choices(WORDS, k=rng.randint(5, 40)) if rng.random() < 0.7 else None
        for word, share in PLANTED.items():
            if rng.random() < share:
                words.insert(rng.randrange(len(words) + 1), word)
        description = " ".join(text) if text is not None else None
        due: date | None = None if rng.random() < 0.3 else today + timedelta(days=rng.randint(-365, 365))
        category = rng.choices(category_ids, weights)[0] if category_ids and rng.random() < 0.8 else None
        created = now - timedelta(minutes=count - i, seconds=rng.random() * 30)
        yield (
            uuid.uuid4(),
            user_id,
            " ".join(words).capitalize(),
            description,
            rng.choice(STATUSES),
            rng.randint(1, 5),
            due,
            category,
            created,
        )


async def seed_tasks(conn: asyncpg.Connection, user_id: uuid.UUID, count: int, seed: int = 1) -> None:
    """`count` tasks for the user, spread over 20 categories, statuses, priorities and due dates."""
    rng = random.Random(seed)
    category_ids = [
        r["id"]
        for r in await conn.fetch(
            "INSERT INTO categories (user_id, name) SELECT $1, unnest($2::text[]) RETURNING id", user_id, CATEGORIES
        )
    ]
    batch = 50_000
    rows = _rows(user_id, count, category_ids, rng)
    done = 0
    while done < count:
        chunk = [next(rows) for _ in range(min(batch, count - done))]
        await conn.copy_records_to_table("tasks", records=chunk, columns=COLUMNS)
        done += len(chunk)
