"""The Consistency-Token header: with replicas to read from (READ_DATABASE_URL), every write
says where the database stood after it; without, none is needed, and no write spends a round
trip on one."""

import re
from collections.abc import Iterator

import httpx
import pytest

from infrastructure.container import Container
from tests.api.helpers import Json, assert_validation_error
from tests.support.servers import client_of, container_for

# PostgreSQL's text form of a WAL position; the service promises only that it is opaque.
LSN = re.compile(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}")


def tokens(client: httpx.Client, chat: Json) -> list[str | None]:
    """The token of a create, a post and a delete, in that order (None where absent)."""
    created = client.post("/chats/", json={"title": "t"})
    posted = client.post(f"/chats/{chat['id']}/messages/", json={"text": "hello"})
    deleted = client.delete(f"/chats/{created.json()['id']}")
    assert (created.status_code, posted.status_code, deleted.status_code) == (201, 201, 204)
    return [answer.headers.get("Consistency-Token") for answer in (created, posted, deleted)]


def gives_tokens(container: Container, backend: str) -> bool:
    return backend == "postgresql" and bool(container.settings().read_database_url)


@pytest.fixture
def with_replicas(database_url: str, backend: str) -> Iterator[httpx.Client]:
    """The app with READ_DATABASE_URL set (to the database itself: a primary has always
    replayed its own writes)."""
    replicas = {"read_database_url": database_url} if backend == "postgresql" else {}
    container = container_for(database_url, **replicas)
    with client_of(container) as client:
        yield client


def test_with_replicas_every_write_returns_a_token_on_postgresql(
    with_replicas: httpx.Client, backend: str
) -> None:
    chat = with_replicas.post("/chats/", json={"title": "t"}).json()
    found = tokens(with_replicas, chat)
    if backend == "sqlite":
        assert found == [None, None, None]
        return
    assert all(token is not None and LSN.fullmatch(token) for token in found), found


def test_without_replicas_no_write_returns_a_token(
    client: httpx.Client, chat: Json, container: Container, backend: str
) -> None:
    found = tokens(client, chat)
    if gives_tokens(container, backend):  # the suite's pass with reads on a standby
        assert all(token is not None and LSN.fullmatch(token) for token in found), found
    else:
        assert found == [None, None, None]


def test_a_replayed_post_returns_a_token_too(with_replicas: httpx.Client, backend: str) -> None:
    chat = with_replicas.post("/chats/", json={"title": "t"}).json()
    path = f"/chats/{chat['id']}/messages/"
    headers = {"Idempotency-Key": "k-1"}
    with_replicas.post(path, json={"text": "once"}, headers=headers)
    again = with_replicas.post(path, json={"text": "once"}, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert (again.headers.get("Consistency-Token") is None) == (backend == "sqlite")


def test_a_read_with_the_token_of_a_write_shows_it(client: httpx.Client, chat: Json) -> None:
    posted = client.post(f"/chats/{chat['id']}/messages/", json={"text": "seen"})
    token = posted.headers.get("Consistency-Token", "0/0")  # SQLite gives none: any will do
    read = client.get(f"/chats/{chat['id']}", headers={"Consistency-Token": token})
    assert read.status_code == 200, read.text
    assert [message["text"] for message in read.json()["messages"]] == ["seen"]


def test_an_empty_token_is_none(client: httpx.Client, chat: Json) -> None:
    read = client.get(f"/chats/{chat['id']}", headers={"Consistency-Token": ""})
    assert read.status_code == 200, read.text


@pytest.mark.parametrize("token", ["abc", "0/", "/1", "0/1/2", "G/0", "123456789/0", "0x1/0"])
@pytest.mark.parametrize(
    "path", ["/chats/{id}", "/chats/", "/chats/{id}/messages/", "/chats/{id}/messages/?after=0"]
)
def test_a_malformed_token_is_a_422(
    client: httpx.Client, chat: Json, token: str, path: str
) -> None:
    read = client.get(path.format(id=chat["id"]), headers={"Consistency-Token": token})
    assert_validation_error(read, "header", "consistency-token")
