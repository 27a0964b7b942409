"""Credentials under AUTH_MODE=required: every bad one is the same kind of 401 (with
`WWW-Authenticate: Bearer`, `{"detail": str}`, and never the credential in it); a good user
token or API key is let in."""

import base64
import json
import logging
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from infrastructure.container import Container
from tests.auth.conftest import AUDIENCE, SECRET, bearer, token
from tests.auth.helpers import create_chat, raw_get, refused
from tests.support.servers import container_for, new_client, served

ISSUER = "https://id.example"


def _now() -> int:
    return int(datetime.now(UTC).timestamp())


def _claims(**claims: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "sub": "ann",
        "aud": AUDIENCE,
        "iat": _now(),
        "exp": _now() + 3600,
    }
    payload.update(claims)
    return {name: value for name, value in payload.items() if value is not None}


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unsigned() -> str:
    """`alg: none`: a header and a good payload, and no signature at all."""
    return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}."


def _signed_as(algorithm: str) -> str:
    with warnings.catch_warnings():  # the secret is short for HS384/HS512: no matter here
        warnings.simplefilter("ignore")
        return jwt.encode(_claims(), SECRET, algorithm=algorithm)


def _resigned_payload() -> str:
    """A good token whose payload is swapped for another user's, signature kept."""
    header, _, signature = token("ann").split(".")
    return f"{header}.{_b64(_claims(sub='root'))}.{signature}"


# What each bad user token is, built when the test runs (their times are then current).
BAD_TOKENS: dict[str, Callable[[], str]] = {
    "forged": lambda: token("ann", secret="another-secret-of-at-least-32-bytes-987654"),
    "payload-swapped": _resigned_payload,
    "alg-none": _unsigned,
    "alg-none-with-signature": lambda: _unsigned() + token("ann").split(".")[2],
    "hs512": lambda: _signed_as("HS512"),
    "hs384": lambda: _signed_as("HS384"),
    "expired": lambda: token("ann", exp=_now() - 5, iat=_now() - 3600),
    "nbf-in-the-future": lambda: token("ann", nbf=_now() + 600),
    "iat-in-the-future": lambda: token("ann", iat=_now() + 600),
    "no-exp": lambda: token("ann", exp=None),
    "no-aud": lambda: token("ann", aud=None),
    "wrong-aud": lambda: token("ann", aud="another-service"),
    "aud-list-without-ours": lambda: token("ann", aud=["x", "y"]),
    "no-sub": lambda: token("ann", sub=None),
    "sub-129-characters": lambda: token("a" * 129),
    "sub-empty": lambda: token(""),
    "sub-blank": lambda: token("   "),
    "sub-not-a-string": lambda: token("ann", sub=12345),
    "sub-with-nul": lambda: token("ann\x00x"),
    "exp-not-a-number": lambda: token("ann", exp="tomorrow"),
    "garbage": lambda: "abc",
    "three-garbage-parts": lambda: "a.b.c",
    "two-parts": lambda: ".".join(token("ann").split(".")[:2]),
    "truncated-signature": lambda: token("ann")[:-4],
}


def test_no_credential_is_refused(secured: httpx.Client) -> None:
    detail = refused(secured.get("/chats/"))
    assert "Bearer" in detail
    # As for every endpoint, whatever the method.
    refused(secured.post("/chats/", json={"title": "t"}))
    refused(secured.get("/chats/1"))
    refused(secured.delete("/chats/1"))
    refused(secured.post("/chats/1/messages/", json={"text": "x"}))
    refused(secured.get("/chats/1/messages/"))
    refused(secured.get("/chats/1/messages/1"))
    refused(secured.get("/chats/1/members/"))
    refused(secured.put("/chats/1/members/ann", json={"role": "owner"}))
    refused(secured.delete("/chats/1/members/ann"))
    refused(secured.post("/chats/1/events/tickets"))
    refused(secured.get("/chats/1/events"))


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Basic YW5uOnNlY3JldA==", id="basic"),
        pytest.param("Bearer", id="bearer-without-value"),
        pytest.param("Token abc", id="other-scheme"),
        pytest.param("", id="empty-header"),
    ],
)
def test_a_header_that_is_not_a_bearer_credential_is_refused(
    secured: httpx.Client, authorization: str
) -> None:
    refused(secured.get("/chats/", headers={"Authorization": authorization}))


def test_a_bearer_header_with_an_empty_value_is_refused(secured: httpx.Client) -> None:
    for line in ("Authorization: Bearer ", "Authorization: Bearer    ", "Authorization:"):
        refused(raw_get(secured, "/chats/", line))
    # The same way of sending a good one works (the raw request itself is sound).
    good = raw_get(secured, "/chats/", f"Authorization: Bearer {token('ann')}")
    assert good.status_code == 200, good.text


def test_the_basic_scheme_with_a_good_token_is_refused(secured: httpx.Client) -> None:
    good = token("ann")
    refused(secured.get("/chats/", headers={"Authorization": f"Basic {good}"}), good)
    refused(secured.get("/chats/", headers={"Authorization": good}), good)  # no scheme


@pytest.mark.parametrize("name", list(BAD_TOKENS))
def test_a_bad_user_token_is_refused(secured: httpx.Client, name: str) -> None:
    credential = BAD_TOKENS[name]()
    refused(secured.get("/chats/", headers=bearer(credential)), credential)
    refused(secured.post("/chats/", json={"title": "t"}, headers=bearer(credential)), credential)


def test_the_refusals_say_what_is_wrong_without_the_token(secured: httpx.Client) -> None:
    expired = token("ann", exp=_now() - 5)
    assert "expired" in refused(secured.get("/chats/", headers=bearer(expired)), expired)
    early = token("ann", nbf=_now() + 600)
    refused(secured.get("/chats/", headers=bearer(early)), early)
    no_exp = token("ann", exp=None)
    assert "exp" in refused(secured.get("/chats/", headers=bearer(no_exp)), no_exp)


def test_a_credential_in_the_query_string_is_refused(secured: httpx.Client) -> None:
    good = token("ann")
    for name in ("access_token", "token", "bearer", "authorization", "api_key", "key"):
        refused(secured.get("/chats/", params={name: good}), good)
        refused(secured.post("/chats/", params={name: good}, json={"title": "t"}), good)
    # Nothing was created by those.
    assert secured.get("/chats/", headers=bearer(good)).json() == {"chats": []}
    chat_id = create_chat(secured, bearer(good))
    refused(secured.get(f"/chats/{chat_id}", params={"access_token": good}), good)
    refused(secured.get(f"/chats/{chat_id}/events", params={"access_token": good}), good)
    # Nor as a stream ticket: a ticket is not a token.
    refused(secured.get(f"/chats/{chat_id}/events", params={"ticket": good}), good)


def test_a_good_token_is_let_in(secured: httpx.Client) -> None:
    response = secured.get("/chats/", headers=bearer(token("ann")))
    assert response.status_code == 200, response.text
    assert "www-authenticate" not in response.headers
    # nbf and iat in the past are fine, an unknown claim is ignored, the scheme's case too.
    past = _now() - 60
    fine = token("ann", nbf=past, iat=past, scope="whatever", jti="1")
    assert secured.get("/chats/", headers=bearer(fine)).status_code == 200
    lower = {"Authorization": f"bearer {token('ann')}"}
    assert secured.get("/chats/", headers=lower).status_code == 200
    # An `aud` list with ours in it.
    listed = token("ann", aud=["other", AUDIENCE])
    assert secured.get("/chats/", headers=bearer(listed)).status_code == 200
    # A `sub` of 128 characters, and one that is not ASCII, are user ids.
    for user_id in ("a" * 128, "Zoë 😀"):
        headers = bearer(token(user_id))
        chat_id = create_chat(secured, headers)
        members = secured.get(f"/chats/{chat_id}/members/", headers=headers).json()["members"]
        assert [member["user_id"] for member in members] == [user_id]


def test_the_issuer_is_checked_when_one_is_set(database_url: str, secured: httpx.Client) -> None:
    container = container_for(
        database_url,
        auth_mode="required",
        auth_jwt_secret=SECRET,
        auth_jwt_issuer=ISSUER,
        access_log=False,
    )
    with served(container) as base_url, new_client(base_url) as client:
        for bad in (token("ann"), token("ann", iss="https://evil.example")):
            refused(client.get("/chats/", headers=bearer(bad)), bad)
        good = token("ann", iss=ISSUER)
        assert client.get("/chats/", headers=bearer(good)).status_code == 200
    # The server without AUTH_JWT_ISSUER does not look at `iss`.
    assert secured.get("/chats/", headers=bearer(token("ann", iss="anyone"))).status_code == 200


def test_a_good_api_key_is_let_in_and_its_use_is_recorded(
    secured: httpx.Client, service_key: str, auth_container: Container
) -> None:
    (info,) = auth_container.api_keys().list()
    assert info.last_used_at is None
    before = datetime.now(UTC) - timedelta(seconds=1)
    response = secured.get("/chats/", headers=bearer(service_key))
    assert response.status_code == 200, response.text
    (used,) = auth_container.api_keys().list()
    assert used.last_used_at is not None
    assert before <= used.last_used_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert used.revoked_at is None


def test_bad_api_keys_are_refused(
    secured: httpx.Client, service_key: str, auth_container: Container
) -> None:
    key_id, secret = service_key.removeprefix("chatapi_sk_").split("_")
    wrong_secret = f"chatapi_sk_{key_id}_{'0' * 64}"
    flipped = f"chatapi_sk_{key_id}_{secret[:-1]}{'1' if secret[-1] != '1' else '2'}"
    unknown = f"chatapi_sk_{'0' * 16}_{secret}"
    malformed = [
        "chatapi_sk_",
        "chatapi_sk_abc",
        f"chatapi_sk_{key_id}",
        f"chatapi_sk_{key_id}_{secret[:-1]}",
        f"chatapi_sk_{key_id}_{secret}0",
        f"chatapi_sk_{key_id.upper()}_{secret.upper()}",
        f"chatapi_sk_{key_id}-{secret}",
        f"{service_key} and more",
    ]
    for bad in [wrong_secret, flipped, unknown, *malformed]:
        refused(secured.get("/chats/", headers=bearer(bad)), bad, secret)
    # Wrong keys do not count as its use.
    (info,) = auth_container.api_keys().list()
    assert info.last_used_at is None
    assert secured.get("/chats/", headers=bearer(service_key)).status_code == 200


def test_a_revoked_api_key_is_refused(
    secured: httpx.Client, service_key: str, auth_container: Container
) -> None:
    _, other_key = auth_container.api_keys().create("another service")
    assert secured.get("/chats/", headers=bearer(service_key)).status_code == 200
    (info,) = [key for key in auth_container.api_keys().list() if key.name == "test service"]
    auth_container.api_keys().revoke(info.id)
    refused(secured.get("/chats/", headers=bearer(service_key)), service_key)
    refused(secured.post("/chats/", json={"title": "t"}, headers=bearer(service_key)), service_key)
    (revoked,) = [key for key in auth_container.api_keys().list() if key.id == info.id]
    assert revoked.revoked_at is not None
    # Revoking it again changes nothing; the other key still works.
    auth_container.api_keys().revoke(info.id)
    refused(secured.get("/chats/", headers=bearer(service_key)), service_key)
    assert secured.get("/chats/", headers=bearer(other_key)).status_code == 200


def test_credentials_are_never_logged(
    database_url: str, secured: httpx.Client, service_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With the access log on: no token, key or ticket, good or bad, from a header or the
    query string, in any line logged while they are used."""
    container = container_for(
        database_url, auth_mode="required", auth_jwt_secret=SECRET, access_log=True
    )
    good, forged = token("ann"), token("ann", secret="another-secret-of-at-least-32-bytes-987")
    key_id, key_secret = service_key.removeprefix("chatapi_sk_").split("_")
    wrong_key = f"chatapi_sk_{key_id}_{'f' * 64}"
    caplog.set_level(logging.DEBUG)
    with served(container) as base_url, new_client(base_url) as client:
        chat_id = create_chat(client, bearer(good))
        tickets = client.post(f"/chats/{chat_id}/events/tickets", headers=bearer(good))
        ticket = tickets.json()["ticket"]
        for credential in (good, forged, service_key, wrong_key, "abc.def.ghi"):
            client.get("/chats/", headers=bearer(credential))
            client.get(f"/chats/{chat_id}", headers=bearer(credential))
            client.get("/chats/", params={"access_token": credential})
        with client.stream("GET", f"/chats/{chat_id}/events", params={"ticket": ticket}) as r:
            assert r.status_code == 200
        refused(client.get(f"/chats/{chat_id}/events", params={"ticket": ticket}), ticket)
    # The server's lines: not the test client's own (httpx logs the URLs it requests).
    logged = "\n".join(
        record.getMessage()
        for record in caplog.records
        if not record.name.startswith(("httpx", "httpcore"))
    )
    assert '"path": "/chats/"' in logged, logged  # the access log did write its lines
    for secret in (good, forged, service_key, key_secret, wrong_key, ticket, SECRET):
        assert secret not in logged
        for part in secret.split("."):
            if len(part) > 20:
                assert part not in logged


def test_auth_mode_none_asks_for_nothing(client: httpx.Client, secured: httpx.Client) -> None:
    """The embedded default: no credentials asked, whatever is sent; the local caller may do
    everything and its messages have no author unless it names one."""
    for headers in ({}, bearer("garbage"), bearer(token("ann", exp=_now() - 60))):
        created = client.post("/chats/", json={"title": "t"}, headers=headers)
        assert created.status_code == 201, created.text
        chat_id = created.json()["id"]
        posted = client.post(f"/chats/{chat_id}/messages/", json={"text": "x"}, headers=headers)
        assert posted.status_code == 201, posted.text
        assert posted.json()["author"] is None
        assert client.get(f"/chats/{chat_id}/members/", headers=headers).json() == {"members": []}
        assert client.delete(f"/chats/{chat_id}", headers=headers).status_code == 204
    named = client.post("/chats/", json={"title": "t"}).json()["id"]
    message = client.post(f"/chats/{named}/messages/", json={"text": "x", "author": "ann"})
    assert message.json()["author"] == "ann"
