"""UserTokens remembers the tokens it found good, and still refuses one once it expires."""

import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from domain.errors import Unauthenticated
from domain.principals import user
from infrastructure.user_tokens import UserTokens

SECRET = b"unit-test-secret-of-at-least-32-bytes"


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    tokens = UserTokens(SECRET, "chatapi")
    expires = int(time.time()) + 1
    token = jwt.encode({"sub": "ann", "aud": "chatapi", "exp": expires}, SECRET, "HS256")
    assert tokens.verify(token) == user("ann", datetime.fromtimestamp(expires, UTC))
    assert tokens.verify(token).id == "ann"  # from what was remembered
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.verify(token)


def test_a_token_refused_once_is_checked_again_later() -> None:
    """nbf: not good yet, then good; a failure is not remembered."""
    tokens = UserTokens(SECRET, "chatapi")
    good_from = int(time.time()) + 1  # whole seconds, as PyJWT compares them
    claims = {"sub": "ann", "aud": "chatapi", "exp": good_from + 60, "nbf": good_from}
    token = jwt.encode(claims, SECRET, "HS256")
    with pytest.raises(Unauthenticated, match="not valid yet"):
        tokens.verify(token)
    time.sleep(max(0.0, good_from - time.time()) + 0.05)
    assert tokens.verify(token).id == "ann"


def test_minted_tokens_carry_aud_exp_and_the_issuer_when_set() -> None:
    tokens = UserTokens(SECRET, "chatapi", issuer="https://id.example")
    minted = tokens.mint("bob", timedelta(minutes=5), datetime.now(UTC))
    claims = jwt.decode(
        minted, SECRET, algorithms=["HS256"], audience="chatapi", issuer="https://id.example"
    )
    assert claims["sub"] == "bob"
    assert tokens.verify(minted).id == "bob"
    other = UserTokens(SECRET, "chatapi", issuer="https://elsewhere.example")
    with pytest.raises(Unauthenticated, match="iss"):
        other.verify(minted)
