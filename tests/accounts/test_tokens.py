"""Access tokens and activation codes, pure: round trips, and what is refused."""

from __future__ import annotations

import uuid

import pytest

from service.accounts import tokens


def test_access_tokens_round_trip_and_reject_other_types():
    account = uuid.uuid4()
    token = tokens.create_access_token("k" * 40, account, 60)
    assert tokens.decode_access_token("k" * 40, token.token) == account
    with pytest.raises(tokens.InvalidToken):
        tokens.decode_access_token("j" * 40, token.token)


def test_codes_are_four_digits_and_digests_are_keyed_per_account():
    codes = {tokens.new_code() for _ in range(200)}
    assert all(len(c) == 4 and c.isdigit() for c in codes)
    a, b = uuid.uuid4(), uuid.uuid4()
    assert tokens.code_digest("k", a, "1234") != tokens.code_digest("k", b, "1234")
    assert tokens.code_matches("k", a, "1234", tokens.code_digest("k", a, "1234"))
    assert not tokens.code_matches("k", a, "1235", tokens.code_digest("k", a, "1234"))
