"""The OpenAPI document says how to authenticate: a `bearer` HTTP scheme, required by every
operation but the health checks (the stream also takes a `streamTicket`), each of which
declares its 401. The document and the docs themselves need no credential."""

from typing import Any

import httpx

from tests.api.test_openapi import deref

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
OPEN_PREFIXES = ("/health/",)
EVENTS = ("/chats/{chat_id}/events", "get")


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def _schemes(operation: dict[str, Any]) -> set[str]:
    return {name for requirement in operation.get("security", []) for name in requirement}


def test_the_document_declares_the_bearer_scheme(secured: httpx.Client) -> None:
    response = secured.get("/openapi.json")
    assert response.status_code == 200, response.text
    document = response.json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"]["type"] == "http", schemes
    assert schemes["bearer"]["scheme"].lower() == "bearer", schemes
    ticket = schemes["streamTicket"]
    assert (ticket["type"], ticket["in"], ticket["name"]) == ("apiKey", "query", "ticket")
    # No other way in: no scheme takes a token from the query string or a cookie.
    for name, scheme in schemes.items():
        if name != "streamTicket":
            assert scheme.get("in") not in ("query", "cookie"), (name, scheme)


def test_every_operation_but_the_health_checks_requires_it(secured: httpx.Client) -> None:
    document = secured.get("/openapi.json").json()
    operations = _operations(document)
    secured_ones = {
        key: operation
        for key, operation in operations.items()
        if not key[0].startswith(OPEN_PREFIXES)
    }
    expected = {
        ("/chats/", "get"),
        ("/chats/", "post"),
        ("/chats/{chat_id}", "get"),
        ("/chats/{chat_id}", "delete"),
        ("/chats/{chat_id}/messages/", "get"),
        ("/chats/{chat_id}/messages/", "post"),
        ("/chats/{chat_id}/messages/{message_id}", "get"),
        ("/chats/{chat_id}/members/", "get"),
        ("/chats/{chat_id}/members/{user_id}", "put"),
        ("/chats/{chat_id}/members/{user_id}", "delete"),
        ("/chats/{chat_id}/events/tickets", "post"),
        EVENTS,
    }
    assert expected <= set(secured_ones), sorted(set(secured_ones))
    for key, operation in secured_ones.items():
        assert "bearer" in _schemes(operation), (key, operation.get("security"))
        # Each requirement stands alone: bearer is enough by itself.
        assert {"bearer": []} in operation["security"], (key, operation["security"])
        assert "401" in operation["responses"], (key, sorted(operation["responses"]))
        unauthorized = deref(document, operation["responses"]["401"])
        assert "WWW-Authenticate" in unauthorized.get("headers", {}), (key, unauthorized)
        assert "application/json" in unauthorized["content"], (key, unauthorized)
        other = _schemes(operation) - {"bearer"}
        assert other == ({"streamTicket"} if key == EVENTS else set()), (key, other)
    # The stream takes either, alone.
    assert {"streamTicket": []} in operations[EVENTS]["security"]
    # The health checks need nothing, and say so.
    health = [op for key, op in operations.items() if key[0].startswith(OPEN_PREFIXES)]
    assert health, sorted(operations)
    for operation in health:
        assert not operation.get("security"), operation
        assert "401" not in operation["responses"], operation
    # No global requirement that the health checks would inherit.
    assert not document.get("security"), document.get("security")


def test_the_docs_and_health_checks_need_no_credential(secured: httpx.Client) -> None:
    for path in ("/openapi.json", "/docs", "/redoc", "/health/live", "/health/ready"):
        response = secured.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:200])
        assert "www-authenticate" not in response.headers, path
