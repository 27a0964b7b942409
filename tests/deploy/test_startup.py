"""The image's commands, run outside a container against the test PostgreSQL.

With no Docker engine here, the final stage's environment, CMD and HEALTHCHECK and the
Compose services' commands are read from their files and run as processes from the
repository root (standing in for /app), with the project's virtualenv standing in for
/opt/venv. Only PORT, HOST and DATABASE_URL are changed, to reach a free loopback port and
a fresh test database (whose URL brings its own credentials: the env files' PGPASSWORD goes
unused); the env files are made by deploy/make-env-files.sh (tests/deploy/conftest.py).
"""

import importlib.metadata
import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine

from devtools.ports import free_port
from infrastructure import migrations
from tests.conftest import EmptyDatabases
from tests.deploy import compose as c
from tests.deploy import lock, runtime
from tests.deploy.image import REPO, Image
from tests.deploy.runtime import Recorder, Server, describe

LOG_KEYS = {"request_id", "method", "path", "status", "duration_ms"}
EXIT_UNHEALTHY = 1  # Docker: 0 healthy, 1 unhealthy, 2 reserved
EXIT_BAD_SETTING = 2  # README: "a one-line message and exit status 2"

Json = dict[str, Any]
EnvFiles = dict[str, dict[str, str]]


@pytest.fixture
def fresh_database(databases: EmptyDatabases) -> str:
    """An empty PostgreSQL database (the test is skipped when there is no PostgreSQL)."""
    return databases.new("postgresql")


def container_env(image: Image, database_url: str, port: int) -> dict[str, str]:
    return {
        **image.environment(),
        "DATABASE_URL": database_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }


def service_env(
    image: Image, service: c.Service, env_files: EnvFiles, **overrides: str
) -> dict[str, str]:
    """What a Compose service of this image runs with: image ENV, then its env files and
    its `environment`."""
    return {**image.environment(), **c.container_environment(service, env_files), **overrides}


def migrate(image: Image, compose: Json, env_files: EnvFiles, database_url: str) -> None:
    """Run the Compose `migrate` service's command, which must succeed."""
    service = c.service(compose, "migrate")
    env = service_env(image, service, env_files, DATABASE_URL=database_url)
    result = runtime.run(c.command(service), env)
    assert result.returncode == 0, describe(result)
    assert "Traceback" not in result.stderr, describe(result)


def at_head(database_url: str) -> bool:
    engine = create_engine(database_url)
    try:
        return migrations.is_at_head(engine)
    finally:
        engine.dispose()


@contextmanager
def started(image: Image, database_url: str, directory: Path) -> Iterator[Server]:
    """The image's start-up command, running; stopped as `docker stop` stops it, always."""
    env = container_env(image, database_url, free_port())
    with Server(image.startup_argv(), env, directory, image.stop_signal()) as server:
        yield server


def healthchecks(
    image: Image, compose: Json, env_files: EnvFiles, env: dict[str, str]
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run the Dockerfile's HEALTHCHECK and the api service's healthcheck with `env`.

    The latter gets the api service's env files and `environment` too, as in its container
    (AUTH_MODE=required with its secrets); the DATABASE_URL there names host `db`, which is
    only validated: the healthcheck asks the server on PORT.
    """
    api = c.service(compose, "api")
    in_container = {**env, **c.container_environment(api, env_files), "PORT": env["PORT"]}
    return {
        "Dockerfile HEALTHCHECK": runtime.run(image.healthcheck_argv(), env),
        "compose api healthcheck": runtime.run(c.healthcheck_argv(api), in_container),
    }


def expect(response: httpx.Response, status: int, server: Server) -> Json:
    assert response.status_code == status, f"{response.text}\n{server.output()}"
    body: Json = response.json()
    return body


def route_matches(template: str, path: str) -> bool:
    """`/chats/{chat_id}` matches `/chats/7`."""
    return re.fullmatch(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)), path) is not None


def assert_one_log_line_per_request(
    server: Server, received: list[httpx.Response], healthcheck_requests: int
) -> None:
    """Each response the client got has its line on stdout (by request id); the rest are the
    healthcheck commands' requests. Read once the server has stopped."""
    logged = runtime.json_lines(server.stdout)
    assert len(logged) == len(received) + healthcheck_requests, server.output()
    for line in logged:
        assert set(line) >= LOG_KEYS, line
        assert isinstance(line["status"], int), line
        assert isinstance(line["duration_ms"], int | float), line
        assert line["duration_ms"] >= 0, line
    by_id = {line["request_id"]: line for line in logged}
    assert len(by_id) == len(logged), f"request ids repeat: {logged}"
    for response in received:
        request_id = response.headers["x-request-id"]
        assert request_id in by_id, (request_id, logged)
        line = by_id.pop(request_id)
        assert line["method"] == response.request.method, line
        assert line["status"] == response.status_code, line
        assert route_matches(line["path"], response.request.url.path), line
    rest = [(line["method"], line["path"], line["status"]) for line in by_id.values()]
    assert rest == [("GET", "/health/ready", 200)] * healthcheck_requests, rest


def test_the_virtualenv_standing_in_for_the_images_holds_its_locked_versions() -> None:
    """What runs here is what the image installs from requirements.lock, version for version."""
    locked = lock.pins(REPO / "requirements.lock")
    assert locked
    installed: dict[str, str | None] = {}
    for name in locked:
        try:
            installed[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed[name] = None
    assert installed == locked


def test_the_migrate_command_migrates_and_can_run_again(
    image: Image, compose: Json, env_file_contents: EnvFiles, fresh_database: str
) -> None:
    migrate(image, compose, env_file_contents, fresh_database)
    assert at_head(fresh_database)
    # `docker compose up` again: nothing to do, exit 0
    migrate(image, compose, env_file_contents, fresh_database)
    assert at_head(fresh_database)


def test_the_image_serves_the_api_once_migrated(
    image: Image, compose: Json, env_file_contents: EnvFiles, fresh_database: str, tmp_path: Path
) -> None:
    migrate(image, compose, env_file_contents, fresh_database)
    recorder = Recorder()
    with (
        started(image, fresh_database, tmp_path) as server,
        recorder.client(server.base_url) as http,
    ):
        server.wait_for(http, "/health/ready", 200)

        headers = {"X-Request-ID": "deploy-create-chat"}
        created = expect(
            http.post("/chats/", json={"title": " Deploy "}, headers=headers), 201, server
        )
        assert created["title"] == "Deploy"
        chat = expect(http.get(f"/chats/{created['id']}"), 200, server)
        assert chat["id"] == created["id"]
        assert chat["title"] == "Deploy"
        assert chat["messages"] == []

        for name, result in healthchecks(image, compose, env_file_contents, server.env).items():
            assert result.returncode == 0, f"{name}: {describe(result)}\n{server.output()}"

        status = server.stop()
        output = server.output()
        assert status in (0, -image.stop_signal()), output  # uvicorn re-raises the signal
        assert "Application shutdown complete" in server.stderr, output
        assert "Traceback" not in output, output
        assert_one_log_line_per_request(server, recorder.responses, healthcheck_requests=2)


def test_the_image_serves_503_until_migrated_then_is_ready_without_a_restart(
    image: Image, compose: Json, env_file_contents: EnvFiles, fresh_database: str, tmp_path: Path
) -> None:
    """The start-up command never migrates (the one-shot `migrate` does, so replicas never
    race to), and an unmigrated database does not stop it: it says so, answers 503 and is
    not ready until the migration has run, then serves, whatever order they started in."""
    with (
        started(image, fresh_database, tmp_path) as server,
        httpx.Client(base_url=server.base_url, timeout=10) as http,
    ):
        server.wait_for(http, "/health/live", 200)
        assert "chatapi migrate" in server.stderr, server.output()

        ready = http.get("/health/ready")
        assert ready.status_code == 503, f"{ready.text}\n{server.output()}"
        assert "migration" in ready.json()["detail"]
        assert "retry-after" in ready.headers
        for response in (http.get("/chats/"), http.post("/chats/", json={"title": "early"})):
            assert response.status_code == 503, f"{response.text}\n{server.output()}"
            assert "retry-after" in response.headers

        for name, result in healthchecks(image, compose, env_file_contents, server.env).items():
            assert result.returncode == EXIT_UNHEALTHY, f"{name}: {describe(result)}"
            assert "Traceback" not in result.stderr, f"{name}: {describe(result)}"
        assert not at_head(fresh_database)  # the server changed nothing

        migrate(image, compose, env_file_contents, fresh_database)

        server.wait_for(http, "/health/ready", 200)
        expect(http.post("/chats/", json={"title": "after"}), 201, server)
        for name, result in healthchecks(image, compose, env_file_contents, server.env).items():
            assert result.returncode == 0, f"{name}: {describe(result)}\n{server.output()}"
        assert "Traceback" not in server.output(), server.output()


def test_the_healthcheck_fails_when_nothing_listens(
    image: Image, compose: Json, env_file_contents: EnvFiles
) -> None:
    api = c.service(compose, "api")
    env = service_env(image, api, env_file_contents, PORT=str(free_port()))
    for name, result in healthchecks(image, compose, env_file_contents, env).items():
        assert result.returncode == EXIT_UNHEALTHY, f"{name}: {describe(result)}"
        assert "Traceback" not in result.stderr, f"{name}: {describe(result)}"


@pytest.mark.parametrize(("name", "value"), [("PORT", "notaport"), ("DATABASE_URL", "mysql://x")])
def test_a_bad_setting_stops_start_up_with_one_line(
    image: Image, tmp_path: Path, name: str, value: str
) -> None:
    database = tmp_path / "data"
    database.mkdir()
    env = container_env(image, f"sqlite:///{database}/chatapi.db", free_port())
    env[name] = value

    result = runtime.run(image.startup_argv(), env)  # bounded: a server that starts fails it

    assert result.returncode == EXIT_BAD_SETTING, describe(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, describe(result)
    assert name in lines[0], describe(result)
    assert "Traceback" not in result.stdout + result.stderr, describe(result)
    assert list(database.iterdir()) == [], "a database was created before the settings failed"


def test_the_image_alone_refuses_to_serve_everyone_unauthenticated(
    image: Image, tmp_path: Path
) -> None:
    """`docker run chatapi` with no AUTH_MODE: the image listens on 0.0.0.0, where
    AUTH_MODE=none would let anyone do everything: one line, exit 2, nothing served."""
    database = tmp_path / "data"
    database.mkdir()
    env = {
        **image.environment(),
        "DATABASE_URL": f"sqlite:///{database}/chatapi.db",
        "PORT": str(free_port()),
    }
    assert env["HOST"] == "0.0.0.0", env["HOST"]

    result = runtime.run(image.startup_argv(), env)  # bounded: a server that starts fails it

    assert result.returncode == EXIT_BAD_SETTING, describe(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, describe(result)
    assert "AUTH_MODE" in lines[0], describe(result)
    assert "Traceback" not in result.stdout + result.stderr, describe(result)
    assert list(database.iterdir()) == [], "a database was created before the refusal"


def test_the_api_service_serves_only_with_credentials(
    image: Image, compose: Json, env_file_contents: EnvFiles, fresh_database: str, tmp_path: Path
) -> None:
    """The api as Compose runs it (image ENV, env file, `environment`: AUTH_MODE=required),
    on a loopback port: its health is public, everything else needs a credential, which
    `docker compose exec api python -m cli ...` makes with the container's own settings."""
    migrate(image, compose, env_file_contents, fresh_database)
    api = c.service(compose, "api")
    env = service_env(
        image,
        api,
        env_file_contents,
        DATABASE_URL=fresh_database,
        HOST="127.0.0.1",  # the one change besides the database: not 0.0.0.0 in a test
        PORT=str(free_port()),
    )
    assert env["AUTH_MODE"] == "required"
    exec_in_api = ["python", "-m", "cli"]  # as the image runs the console script
    with (
        Server(image.startup_argv(), env, tmp_path, image.stop_signal()) as server,
        httpx.Client(base_url=server.base_url, timeout=10) as http,
    ):
        server.wait_for(http, "/health/ready", 200)
        refused = http.post("/chats/", json={"title": "anyone"})
        assert refused.status_code == 401, f"{refused.text}\n{server.output()}"
        assert refused.headers["www-authenticate"] == "Bearer"

        minted = runtime.run([*exec_in_api, "token", "mint", "ann", "--ttl", "600"], env)
        assert minted.returncode == 0, describe(minted)
        token = minted.stdout.strip()
        as_ann = {"Authorization": f"Bearer {token}"}
        chat = expect(http.post("/chats/", json={"title": "ann's"}, headers=as_ann), 201, server)

        made = runtime.run([*exec_in_api, "keys", "create", "deploy-test"], env)
        assert made.returncode == 0, describe(made)
        as_bot = {"Authorization": f"Bearer {json.loads(made.stdout)['key']}"}
        posted = http.post(
            f"/chats/{chat['id']}/messages/", json={"text": "hi", "author": "bot"}, headers=as_bot
        )
        assert expect(posted, 201, server)["author"] == "bot"

        for name, result in healthchecks(image, compose, env_file_contents, server.env).items():
            assert result.returncode == 0, f"{name}: {describe(result)}\n{server.output()}"
        server.stop()
        for secret in (token, *env_file_contents[c.env_files(api)[0]].values()):
            assert secret not in server.output(), "a credential or secret in the server's log"
