"""The installed `chatapi` console script, end to end, as a user runs it from a shell."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from devtools.ports import free_port
from infrastructure import migrations
from tests.conftest import EmptyDatabases
from tests.support.database import count_rows, inspector
from tests.support.servers import new_client

CHATAPI = Path(sys.executable).parent / "chatapi"
COMMAND_TIMEOUT_SECONDS = 120.0
SERVER_START_SECONDS = 30.0
SERVER_STOP_SECONDS = 15.0


def cli_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "HOST", "PORT"} and not key.startswith("DB_")
    }
    env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


def chatapi(
    database_url: str, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the console script with DATABASE_URL set (and `env`); bounded in time."""
    return subprocess.run(
        [str(CHATAPI), *args],
        env=cli_env(database_url) | (env or {}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )


def succeeded(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a successful command printed on stdout."""
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def failed(result: subprocess.CompletedProcess[str]) -> str:
    """The message of a failed command: non-zero exit, one JSON line on stderr, no stdout."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout.strip() == "", result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    error = json.loads(lines[0])
    assert isinstance(error, dict), error
    assert set(error) == {"error"}, error
    assert isinstance(error["error"], str), error
    assert error["error"].strip(), error
    return error["error"]


def parse_timestamp(value: Any) -> datetime:
    assert isinstance(value, str), value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0), value
    return parsed


@pytest.fixture
def fresh_url(backend: str, databases: EmptyDatabases) -> str:
    """A new, empty (not migrated) database of the current backend."""
    return databases.new(backend)


@pytest.fixture
def migrated_url(fresh_url: str) -> str:
    """A new database of the current backend, migrated by the console script itself."""
    succeeded(chatapi(fresh_url, "migrate"))
    return fresh_url


@pytest.fixture
def database(migrated_url: str) -> Iterator[Engine]:
    """The migrated database, for the test's own SQL beside the commands."""
    with inspector(migrated_url) as engine:
        yield engine


def test_the_console_script_is_installed() -> None:
    assert CHATAPI.is_file()
    assert os.access(CHATAPI, os.X_OK)
    result = subprocess.run(
        [str(CHATAPI), "--help"], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS
    )
    assert result.returncode == 0, result.stderr
    for command in ("serve", "migrate", "create-chat", "post", "show", "delete"):
        assert command in result.stdout


def test_migrate_brings_an_empty_database_to_head(fresh_url: str) -> None:
    engine = create_engine(fresh_url)
    try:
        assert not migrations.is_at_head(engine)
        out = succeeded(chatapi(fresh_url, "migrate"))
        assert isinstance(out, dict)
        assert "migrated" in out
        assert migrations.is_at_head(engine)

        succeeded(chatapi(fresh_url, "migrate"))  # a second run changes nothing and succeeds
        assert migrations.is_at_head(engine)
    finally:
        engine.dispose()


def test_migrate_does_not_print_the_password(databases: EmptyDatabases) -> None:
    # Only a PostgreSQL URL carries a password. The suite's own server trusts every login, so
    # a made-up password is accepted and can be looked for in the output.
    url = make_url(databases.new("postgresql"))
    if url.password is None:
        url = url.set(password="s3cret-Pa55")
    password = str(url.password)

    result = chatapi(url.render_as_string(hide_password=False), "migrate")

    succeeded(result)
    assert password not in result.stdout + result.stderr


def test_create_chat_trims_the_title_and_prints_it(migrated_url: str, database: Engine) -> None:
    created = succeeded(chatapi(migrated_url, "create-chat", "  hi  "))

    assert set(created) == {"id", "title", "created_at"}  # as POST /chats/ returns it
    assert isinstance(created["id"], int)
    assert created["title"] == "hi"
    parse_timestamp(created["created_at"])
    assert count_rows(database, "chats") == 1


def test_post_prints_the_message(migrated_url: str, database: Engine) -> None:
    chat = succeeded(chatapi(migrated_url, "create-chat", "hi"))
    chat_id = chat["id"]

    posted = succeeded(chatapi(migrated_url, "post", str(chat_id), "  hello, wörld 😀 "))

    assert set(posted) == {"id", "chat_id", "seq", "text", "created_at", "author"}  # as POST
    assert isinstance(posted["id"], int)
    assert posted["chat_id"] == chat_id
    assert posted["text"] == "  hello, wörld 😀 "  # stored exactly as sent
    assert parse_timestamp(posted["created_at"]) >= parse_timestamp(chat["created_at"])
    assert count_rows(database, "messages") == 1


def test_show_prints_the_last_messages_oldest_first(migrated_url: str) -> None:
    chat = succeeded(chatapi(migrated_url, "create-chat", "hi"))
    chat_id = str(chat["id"])
    posted = [succeeded(chatapi(migrated_url, "post", chat_id, f"m{n}")) for n in range(3)]

    shown = succeeded(chatapi(migrated_url, "show", chat_id, "--limit", "2"))

    assert shown["id"] == chat["id"]
    assert shown["title"] == "hi"
    assert shown["created_at"] == chat["created_at"]
    assert shown["message_count"] == 3
    assert shown["last_message_at"] == posted[-1]["created_at"]
    assert [m["text"] for m in shown["messages"]] == ["m1", "m2"]
    assert [m["id"] for m in shown["messages"]] == [p["id"] for p in posted[1:]]
    for message in shown["messages"]:
        assert message["chat_id"] == chat["id"]
        parse_timestamp(message["created_at"])

    everything = succeeded(chatapi(migrated_url, "show", chat_id))
    assert [m["text"] for m in everything["messages"]] == ["m0", "m1", "m2"]


def test_delete_removes_the_chat_and_its_messages(migrated_url: str, database: Engine) -> None:
    chat = succeeded(chatapi(migrated_url, "create-chat", "doomed"))
    chat_id = str(chat["id"])
    succeeded(chatapi(migrated_url, "post", chat_id, "bye"))

    deleted = chatapi(migrated_url, "delete", chat_id)

    assert deleted.returncode == 0, deleted.stderr
    assert "Traceback" not in deleted.stderr
    assert count_rows(database, "chat_views") == 0  # gone to every read at once
    pending = succeeded(chatapi(migrated_url, "jobs"))["jobs"]
    assert [(job["kind"], job["chat_id"], job["done"]) for job in pending] == [
        ("purge_chat", int(chat_id), 0)
    ]
    # Its messages go with the purge: `chatapi worker`'s, or here the jobs due, run at once.
    assert succeeded(chatapi(migrated_url, "worker", "--until-idle"))["steps"] >= 1
    assert count_rows(database, "chats") == 0
    assert count_rows(database, "messages") == 0
    assert count_rows(database, "chat_views") == 0

    assert "not found" in failed(chatapi(migrated_url, "show", chat_id))
    assert "not found" in failed(chatapi(migrated_url, "delete", chat_id))
    assert "not found" in failed(chatapi(migrated_url, "post", chat_id, "too late"))
    assert count_rows(database, "messages") == 0


def test_a_missing_chat_is_a_distinct_failure(migrated_url: str) -> None:
    missing = chatapi(migrated_url, "show", "424242")
    failed(missing)
    invalid = chatapi(migrated_url, "create-chat", " ")
    failed(invalid)
    assert missing.returncode != invalid.returncode  # scripts can tell the two apart


@pytest.mark.parametrize("title", ["", "   ", "\t\n", "x" * 201])
def test_an_invalid_title_fails_and_writes_nothing(
    migrated_url: str, database: Engine, title: str
) -> None:
    message = failed(chatapi(migrated_url, "create-chat", title))

    assert "title" in message
    assert count_rows(database, "chats") == 0
    assert count_rows(database, "chat_views") == 0


@pytest.mark.parametrize("text_", ["", "   ", "x" * 5001])
def test_an_invalid_text_fails_and_writes_nothing(
    migrated_url: str, database: Engine, text_: str
) -> None:
    chat_id = str(succeeded(chatapi(migrated_url, "create-chat", "hi"))["id"])

    message = failed(chatapi(migrated_url, "post", chat_id, text_))

    assert "text" in message
    assert count_rows(database, "messages") == 0
    shown = succeeded(chatapi(migrated_url, "show", chat_id))
    assert shown["message_count"] == 0


@pytest.mark.parametrize("limit", ["0", "101", "-1"])
def test_an_invalid_limit_fails(migrated_url: str, limit: str) -> None:
    chat_id = str(succeeded(chatapi(migrated_url, "create-chat", "hi"))["id"])

    message = failed(chatapi(migrated_url, "show", chat_id, "--limit", limit))

    assert "limit" in message


def test_rebuild_read_models_reports_the_chat_views(migrated_url: str, database: Engine) -> None:
    first = str(succeeded(chatapi(migrated_url, "create-chat", "one"))["id"])
    succeeded(chatapi(migrated_url, "create-chat", "two"))
    for n in range(2):
        succeeded(chatapi(migrated_url, "post", first, f"m{n}"))
    before = succeeded(chatapi(migrated_url, "show", first))

    # Lose the read model entirely: the rebuild recomputes it from the write model.
    with database.begin() as connection:
        connection.execute(text("DELETE FROM chat_views"))
    failed(chatapi(migrated_url, "show", first))

    assert succeeded(chatapi(migrated_url, "rebuild-read-models")) == {"chat_views": 2}

    assert succeeded(chatapi(migrated_url, "show", first)) == before
    assert count_rows(database, "chat_views") == 2


def test_rebuild_read_models_of_an_empty_database(migrated_url: str) -> None:
    assert succeeded(chatapi(migrated_url, "rebuild-read-models")) == {"chat_views": 0}


@pytest.mark.parametrize("kind", ["create-chat", "post"])
def test_an_idempotency_key_reused_for_other_input_is_invalid_input(
    migrated_url: str, database: Engine, kind: str
) -> None:
    chat_id = str(succeeded(chatapi(migrated_url, "create-chat", "hi"))["id"])

    def run(value: str) -> subprocess.CompletedProcess[str]:
        args = ("create-chat", value) if kind == "create-chat" else ("post", chat_id, value)
        return chatapi(migrated_url, *args, "--idempotency-key", "k-1")

    first = succeeded(run("A"))
    assert succeeded(run("A")) == first  # a retry gets the first result again
    table = "chats" if kind == "create-chat" else "messages"
    rows = count_rows(database, table)

    reused = run("B")

    assert "idempotency key" in failed(reused)
    assert reused.returncode == 2  # invalid input, as a 422 is over HTTP
    assert count_rows(database, table) == rows


# Every command that reads or writes the chats; `migrate` and `serve` are the others.
DATABASE_COMMANDS = [
    ("create-chat", "hi"),
    ("post", "1", "hi"),
    ("show", "1"),
    ("list",),
    ("history", "1"),
    ("history", "1", "--after", "0"),
    ("follow", "1"),
    ("delete", "1"),
    ("rebuild-read-models",),
    ("purge-idempotency-keys",),
]


@pytest.mark.parametrize("schema", ["missing", "behind"])
def test_every_database_command_asks_for_a_migration_until_there_is_one(
    fresh_url: str, schema: str
) -> None:
    if schema == "behind":
        migrations.upgrade(fresh_url)
        migrations.downgrade(fresh_url, "-1")

    for args in DATABASE_COMMANDS:
        result = chatapi(fresh_url, *args)
        message = failed(result)
        assert result.returncode == 4, (args, result.returncode, message)
        assert "chatapi migrate" in message, (args, message)

    succeeded(chatapi(fresh_url, "migrate"))
    assert succeeded(chatapi(fresh_url, "create-chat", "hi"))["title"] == "hi"


BAD_URLS = [
    "nonsense",
    "mysql://x/y",
    "oracle://scott:tiger@localhost/xe",
    "http://example.com/db",
    "",
]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("args", [("migrate",), ("create-chat", "hi"), ("rebuild-read-models",)])
def test_a_bad_database_url_is_a_one_line_error(
    url: str, args: tuple[str, ...], tmp_path: Path
) -> None:
    result = chatapi(url, *args, cwd=tmp_path)

    message = failed(result)
    assert "DATABASE_URL" in message
    assert list(tmp_path.iterdir()) == []  # no database file was created anywhere


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("postgresql+psycopg2://chatapi@127.0.0.1:{port}/chatapi", id="closed-port"),
        pytest.param("sqlite:///{tmp}/no/such/directory/chatapi.db", id="sqlite-no-directory"),
    ],
)
def test_an_unreachable_database_is_a_one_line_error(url: str, tmp_path: Path) -> None:
    database_url = url.format(port=free_port(), tmp=tmp_path)

    for args in (("migrate",), ("create-chat", "hi"), ("show", "1")):
        result = chatapi(database_url, *args, cwd=tmp_path)
        failed(result)


def test_a_plain_postgresql_url_works(databases: EmptyDatabases) -> None:
    """The settings accept `postgresql://` without a driver name (their error message asks
    for exactly that form), so such a URL must reach the installed driver, not crash."""
    url = make_url(databases.new("postgresql"))
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    assert plain.startswith("postgresql://")

    succeeded(chatapi(plain, "migrate"))
    created = succeeded(chatapi(plain, "create-chat", "plain"))
    assert created["title"] == "plain"


# --- serve -----------------------------------------------------------------------------------


@pytest.fixture
def served(migrated_url: str, tmp_path: Path) -> Iterator[str]:
    """`chatapi serve` running in its own process on a free loopback port."""
    port = free_port()
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen(
        [str(CHATAPI), "serve"],
        env=cli_env(migrated_url, HOST="127.0.0.1", PORT=str(port)),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(process, base_url, log_path=tmp_path / "serve.log")
        yield base_url
        process.terminate()
        returncode = process.wait(timeout=SERVER_STOP_SECONDS)
        output = read(tmp_path / "serve.log")
        assert returncode == 0, output  # a graceful stop, not "killed by SIGTERM"
        assert "Application shutdown complete" in output, output
        assert "Traceback" not in output, output
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=SERVER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=SERVER_STOP_SECONDS)
        log.close()


def read(path: Path) -> str:
    return path.read_text(errors="replace")


def wait_until_serving(process: subprocess.Popen[str], base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"chatapi serve exited with {process.returncode}: {read(log_path)}")
        try:
            httpx.get(f"{base_url}/docs", timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        return
    pytest.fail(f"chatapi serve did not answer within {SERVER_START_SECONDS} s: {read(log_path)}")


def test_serve_answers_http(served: str, migrated_url: str) -> None:
    with new_client(served) as http:
        docs = http.get("/docs")
        assert docs.status_code == 200
        assert "text/html" in docs.headers["content-type"]

        created = http.post("/chats/", json={"title": "  served  "})
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["title"] == "served"
        assert isinstance(body["id"], int)

        posted = http.post(f"/chats/{body['id']}/messages/", json={"text": "over HTTP"})
        assert posted.status_code == 201, posted.text

    # The server wrote to the database named by DATABASE_URL, which the CLI reads too.
    shown = succeeded(chatapi(migrated_url, "show", str(body["id"])))
    assert shown["title"] == "served"
    assert [m["text"] for m in shown["messages"]] == ["over HTTP"]


# --- list and history ------------------------------------------------------------------------


def test_list_and_history_are_commands() -> None:
    result = subprocess.run(
        [str(CHATAPI), "--help"], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS
    )
    assert result.returncode == 0, result.stderr
    for command in ("list", "history"):
        assert command in result.stdout


def test_list_prints_chats_by_last_activity_a_page_at_a_time(migrated_url: str) -> None:
    a = succeeded(chatapi(migrated_url, "create-chat", "a"))
    b = succeeded(chatapi(migrated_url, "create-chat", "b"))
    c = succeeded(chatapi(migrated_url, "create-chat", "c"))
    posted = succeeded(chatapi(migrated_url, "post", str(a["id"]), "😀" * 150))

    first = succeeded(chatapi(migrated_url, "list", "--limit", "2"))

    assert set(first) == {"chats", "next_cursor"}
    assert [chat["id"] for chat in first["chats"]] == [a["id"], c["id"]]
    assert first["chats"][0] == {
        "id": a["id"],
        "title": "a",
        "created_at": a["created_at"],
        "message_count": 1,
        "last_message_at": posted["created_at"],
        "last_activity_at": posted["created_at"],
        "last_message_preview": "😀" * 100,
    }
    empty = first["chats"][1]
    assert empty["last_message_at"] is None
    assert empty["last_message_preview"] is None
    assert empty["last_activity_at"] == c["created_at"]
    assert isinstance(first["next_cursor"], str)

    rest = succeeded(
        chatapi(migrated_url, "list", "--limit", "2", "--cursor", first["next_cursor"])
    )
    assert [chat["id"] for chat in rest["chats"]] == [b["id"]]
    assert "next_cursor" not in rest  # absent on the last page, as over HTTP

    everything = succeeded(chatapi(migrated_url, "list"))  # the default limit holds all three
    assert everything == {"chats": first["chats"] + rest["chats"]}


def test_history_pages_back_through_a_chat(migrated_url: str) -> None:
    chat_id = str(succeeded(chatapi(migrated_url, "create-chat", "hi"))["id"])
    posted = [succeeded(chatapi(migrated_url, "post", chat_id, f"m{n}")) for n in range(3)]
    ids = [p["id"] for p in posted]

    newest = succeeded(chatapi(migrated_url, "history", chat_id, "--limit", "2"))
    assert set(newest) == {"chat_id", "messages", "next_before"}
    assert newest["chat_id"] == int(chat_id)
    assert [m["id"] for m in newest["messages"]] == ids[1:]
    assert [m["text"] for m in newest["messages"]] == ["m1", "m2"]
    assert [m["created_at"] for m in newest["messages"]] == [p["created_at"] for p in posted[1:]]
    assert isinstance(newest["next_before"], str)
    oldest = succeeded(
        chatapi(migrated_url, "history", chat_id, "--limit", "2", "--before", newest["next_before"])
    )
    assert [m["id"] for m in oldest["messages"]] == ids[:1]
    assert "next_before" not in oldest  # absent at the start, as over HTTP

    # `show` gives the cursor that continues into older history.
    shown = succeeded(chatapi(migrated_url, "show", chat_id, "--limit", "1"))
    assert [m["id"] for m in shown["messages"]] == ids[2:]
    older = succeeded(chatapi(migrated_url, "history", chat_id, "--before", shown["next_before"]))
    assert [m["id"] for m in older["messages"]] == ids[:2]
    assert "next_before" not in older

    # Bad input: exit 2 (invalid) or 3 (no such chat), one JSON line naming the problem.
    cases = [
        (("list", "--cursor", newest["next_before"]), "cursor", 2),
        (("history", chat_id, "--before", "garbage"), "before", 2),
        (("history", "424242"), "not found", 3),
    ]
    for args, words, status in cases:
        result = chatapi(migrated_url, *args)
        assert words in failed(result), args
        assert result.returncode == status, args


# --- the CLI prints what HTTP returns --------------------------------------------------------


def http_body(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def test_create_chat_and_post_print_what_http_returns(
    client: httpx.Client, database_url: str
) -> None:
    """A command's result, asked for again over HTTP with the same Idempotency-Key, comes back
    as the HTTP API renders it: the two must be the same JSON."""
    created = succeeded(
        chatapi(database_url, "create-chat", " Standup ", "--idempotency-key", "cli-chat")
    )
    replayed = client.post(
        "/chats/", json={"title": " Standup "}, headers={"Idempotency-Key": "cli-chat"}
    )
    assert created == http_body(replayed, 201)

    chat_id = created["id"]
    posted = succeeded(
        chatapi(database_url, "post", str(chat_id), "Done 😀", "--idempotency-key", "cli-message")
    )
    replayed = client.post(
        f"/chats/{chat_id}/messages/",
        json={"text": "Done 😀"},
        headers={"Idempotency-Key": "cli-message"},
    )
    assert posted == http_body(replayed, 201)


def test_show_list_and_history_print_what_http_returns(
    client: httpx.Client, database_url: str
) -> None:
    busy, empty, _ = (
        http_body(client.post("/chats/", json={"title": title}), 201)["id"]
        for title in ("busy", "empty", "third")
    )
    for n in range(3):
        http_body(client.post(f"/chats/{busy}/messages/", json={"text": f"m{n}"}), 201)

    def same(args: tuple[str, ...], path: str) -> Any:
        shown = succeeded(chatapi(database_url, *args))
        assert shown == http_body(client.get(path), 200), args
        return shown

    same(("show", str(busy)), f"/chats/{busy}")  # every message: no next_before
    same(("show", str(empty)), f"/chats/{empty}")  # nulls where there is no message
    older = same(("show", str(busy), "--limit", "2"), f"/chats/{busy}?limit=2")["next_before"]
    same(("history", str(busy), "--before", older), f"/chats/{busy}/messages/?before={older}")
    same(("history", str(busy)), f"/chats/{busy}/messages/")
    more = same(("list", "--limit", "2"), "/chats/?limit=2")["next_cursor"]
    last = same(("list", "--limit", "2", "--cursor", more), f"/chats/?limit=2&cursor={more}")
    assert "next_cursor" not in last


def test_a_write_prints_its_consistency_token_and_a_read_takes_it(
    migrated_url: str, backend: str
) -> None:
    # Reads from replicas (here the database itself) are what a token is for: without them
    # a write gives none.
    assert chatapi(migrated_url, "create-chat", "t").stderr == ""
    replicas = {"READ_DATABASE_URL": migrated_url} if backend == "postgresql" else {}
    created = chatapi(migrated_url, "create-chat", "t", env=replicas)
    chat_id = str(succeeded(created)["id"])
    if backend == "sqlite":
        assert created.stderr == ""  # no token on SQLite
        token = "0/0"
    else:
        token = json.loads(created.stderr)["consistency_token"]
    shown = succeeded(chatapi(migrated_url, "show", chat_id, "--consistency-token", token))
    assert shown["title"] == "t"
    malformed = chatapi(migrated_url, "show", chat_id, "--consistency-token", "nonsense")
    assert "consistency token" in failed(malformed)
