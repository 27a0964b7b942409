"""Every answer says: no sniffing, no framing, no referrer; the docs pages above all."""

import httpx
import pytest

EXPECTED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/docs"),
        ("GET", "/redoc"),
        ("GET", "/openapi.json"),
        ("GET", "/health/live"),
        ("GET", "/chats/"),
        ("GET", "/chats/999999"),  # a 404
        ("POST", "/chats/"),  # a 422: no body
        ("GET", "/nowhere"),
    ],
)
def test_every_answer_carries_the_security_headers(
    client: httpx.Client, method: str, path: str
) -> None:
    response = client.request(method, path)
    for name, value in EXPECTED.items():
        assert response.headers.get_list(name) == [value], (name, response.headers)


def test_an_oversized_body_is_refused_with_them_too(client: httpx.Client) -> None:
    response = client.post("/chats/", content=b"x" * (1 << 20))
    assert response.status_code == 413
    assert response.headers["x-frame-options"] == "DENY"
