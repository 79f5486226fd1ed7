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


def test_a_statement_includes_the_fragments_it_names_and_leaves_other_braces():
    queries = parse_queries(
        "-- name: thing-columns\nt.a, :b AS b\n"
        "-- name: get-thing\nSELECT {thing_columns}, '{}' AS arr FROM t WHERE t.{key} = :id;\n"
    )
    assert queries["get_thing"].sql == "SELECT t.a, $1 AS b, '{}' AS arr FROM t WHERE t.{key} = $2"
    assert queries["get_thing"].params == ("b", "id")
    with pytest.raises(ValueError, match="includes itself"):
        parse_queries("-- name: a\nSELECT {b}\n-- name: b\n{a}\n")
