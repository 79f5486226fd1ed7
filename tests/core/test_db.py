"""Named SQL: the statements of sql/queries/ become positional ones, with their casts kept."""

from __future__ import annotations

import pytest

from service.db import parse_queries


def test_named_queries_become_positional_and_keep_casts():
    queries = parse_queries(
        "-- name: find-thing\n-- Returns a thing.\nSELECT :a::text, :b, :a FROM t WHERE x = 'y:z';\n"
        "-- name: other\nSELECT 1;\n"
    )
    q = queries["find_thing"]
    assert q.sql == "SELECT $1::text, $2, $1 FROM t WHERE x = 'y:z'"
    assert q.args({"a": 1, "b": 2}) == [1, 2]
    assert queries["other"].params == ()
    with pytest.raises(TypeError, match="needs parameter"):
        q.args({"a": 1})
