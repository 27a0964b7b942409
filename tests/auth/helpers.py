"""What the identity and access tests share: asserting a 401, acting as a user or a service
in a few words, reading an event stream with credentials, and running the console script."""

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.support.sse import EventReader

Json = dict[str, Any]
Headers = dict[str, str]

CHATAPI = Path(sys.executable).parent / "chatapi"
COMMAND_TIMEOUT_SECONDS = 60.0
# Settings a command must not inherit from whoever runs the tests.
_INHERITED_NOT = ("DATABASE_URL", "READ_DATABASE_URL", "HOST", "PORT")
_PREFIXES_NOT = ("DB_", "AUTH_", "ALLOW_")


def refused(response: httpx.Response, *credentials: str) -> str:
    """Asserts the conventional 401: `WWW-Authenticate: Bearer`, `{"detail": str}`, and not a
    word of the credentials sent (nor in any header); returns the detail."""
    assert response.status_code == 401, (response.status_code, response.text)
    assert response.headers.get("www-authenticate") == "Bearer", response.headers
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) == {"detail"}, body
    detail = body["detail"]
    assert isinstance(detail, str), body
    assert detail.strip(), body
    for credential in credentials:
        if not credential:
            continue
        assert credential not in response.text, response.text
        for value in response.headers.values():
            assert credential not in value, response.headers
    return detail


def raw_get(client: httpx.Client, path: str, *header_lines: str) -> httpx.Response:
    """A GET sent byte for byte as written, for the headers httpx would refuse to send
    (`Authorization: Bearer ` with its trailing space); the answer as an httpx.Response."""
    url = client.base_url
    assert url.host, url
    assert url.port, url
    head = "".join(f"{line}\r\n" for line in header_lines)
    request = f"GET {path} HTTP/1.1\r\nHost: {url.host}\r\n{head}Connection: close\r\n\r\n"
    with socket.create_connection((url.host, url.port), timeout=10) as connection:
        connection.sendall(request.encode("latin-1"))
        received = bytearray()
        while chunk := connection.recv(65536):
            received += chunk
    head_bytes, _, body = bytes(received).partition(b"\r\n\r\n")
    status_line, *lines = head_bytes.decode("latin-1").split("\r\n")
    headers = [tuple(line.split(":", 1)) for line in lines]
    return httpx.Response(
        int(status_line.split()[1]),
        headers=[(name.strip(), value.strip()) for name, value in headers],
        content=body,
    )


def created(response: httpx.Response, status: int = 201) -> Json:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert isinstance(body, dict), body
    return body


def create_chat(client: httpx.Client, headers: Headers, title: str = "t") -> int:
    chat_id = created(client.post("/chats/", json={"title": title}, headers=headers))["id"]
    assert isinstance(chat_id, int)
    return chat_id


def post_message(
    client: httpx.Client, chat_id: int, headers: Headers, text: str = "hi", **body: Any
) -> Json:
    response = client.post(
        f"/chats/{chat_id}/messages/", json={"text": text, **body}, headers=headers
    )
    return created(response)


def put_member(
    client: httpx.Client, chat_id: int, user_id: str, headers: Headers, role: str = "member"
) -> httpx.Response:
    return client.put(f"/chats/{chat_id}/members/{user_id}", json={"role": role}, headers=headers)


def add_member(
    client: httpx.Client, chat_id: int, user_id: str, headers: Headers, role: str = "member"
) -> Json:
    return created(put_member(client, chat_id, user_id, headers, role))


def member_ids(client: httpx.Client, chat_id: int, headers: Headers) -> list[str]:
    response = client.get(f"/chats/{chat_id}/members/", headers=headers)
    assert response.status_code == 200, response.text
    return [member["user_id"] for member in response.json()["members"]]


def listed_ids(client: httpx.Client, headers: Headers, **params: Any) -> list[int]:
    """The ids of every chat `GET /chats/` lists to the caller, following every page."""
    ids: list[int] = []
    while True:
        response = client.get("/chats/", params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        ids.extend(chat["id"] for chat in page["chats"])
        if "next_cursor" not in page:
            return ids
        params = {**params, "cursor": page["next_cursor"]}


@contextmanager
def events(
    client: httpx.Client,
    chat_id: int,
    headers: Headers | None = None,
    timeout: float = 10.0,
    **params: Any,
) -> Iterator[EventReader]:
    """A chat's event stream opened with these headers and query parameters; it must
    answer a 200 text/event-stream. Closed on exit."""
    with client.stream(
        "GET",
        f"/chats/{chat_id}/events",
        params=params,
        headers=headers or {},
        timeout=httpx.Timeout(timeout),
    ) as response:
        if response.status_code != 200:
            response.read()
            raise AssertionError(f"{response.status_code}: {response.text}")
        assert response.headers["content-type"].startswith("text/event-stream"), response.headers
        yield EventReader(response)


def open_stream(
    client: httpx.Client, chat_id: int, headers: Headers | None = None, **params: Any
) -> httpx.Response:
    """Opens the stream and closes it at once: a 200 (whose first bytes are read), or the
    refusal, read in full."""
    with client.stream(
        "GET",
        f"/chats/{chat_id}/events",
        params=params,
        headers=headers or {},
        timeout=httpx.Timeout(10.0),
    ) as response:
        if response.status_code != 200:
            response.read()
            return response
        first = next(response.iter_bytes())
        assert first.startswith(b"retry:"), first
        # What was read of it, as a response of its own: the stream is closed now.
        return httpx.Response(200, headers=response.headers, content=first)


def cli_env(database_url: str | None = None, **settings: str) -> dict[str, str]:
    """The environment of a `chatapi` command: the test run's, without any setting of the
    service, then DATABASE_URL and `settings`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _INHERITED_NOT and not key.startswith(_PREFIXES_NOT)
    }
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(settings)
    return env


def chatapi(
    *args: str, database_url: str | None = None, **settings: str
) -> subprocess.CompletedProcess[str]:
    """Run the console script, bounded in time."""
    return subprocess.run(
        [str(CHATAPI), *args],
        env=cli_env(database_url, **settings),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )


def start(
    *args: str, database_url: str | None = None, cwd: Path | None = None, **settings: str
) -> subprocess.Popen[str]:
    """Start the console script, for commands that run side by side (see `finish`)."""
    return subprocess.Popen(
        [str(CHATAPI), *args],
        env=cli_env(database_url, **settings),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(
    process: subprocess.Popen[str], timeout: float = COMMAND_TIMEOUT_SECONDS
) -> subprocess.CompletedProcess[str]:
    """The started command's outcome, once it exits; killed (and the test failed) if it
    runs past `timeout`."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise AssertionError(
            f"{process.args!r} still ran after {timeout} s: {stdout!r} {stderr!r}"
        ) from None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def succeeded(result: subprocess.CompletedProcess[str]) -> Any:
    """The one JSON line a successful command printed on stdout."""
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def failed(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The message of a command that failed with `code`: one JSON line {"error": str} on
    stderr, nothing on stdout, no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout.strip() == "", result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    error = json.loads(lines[0])
    assert isinstance(error, dict), error
    assert set(error) == {"error"}, error
    message = error["error"]
    assert isinstance(message, str), error
    assert message.strip(), error
    return message
