"""A database URL's password is never printed: not by `chatapi migrate`, `list` or `serve`, nor
by `alembic upgrade head`, whatever shape the URL is in (DATABASE_URL or READ_DATABASE_URL),
malformed or unreachable, nor when the server refuses the password. And never a traceback.

Each command runs as a user runs it, in a process of its own, and all it writes is searched
for every piece of the password."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from cli.main import main as cli_main
from devtools.ports import free_port
from devtools.postgres_cluster import PostgresCluster, started_cluster
from infrastructure import migrations
from tests.conftest import EmptyDatabases

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_SECONDS = 60.0
SERVER_START_SECONDS = 30.0
# Each password below is made of these; none may be printed, whole or in part.
PIECES = ("Alpha7Secret", "Bravo9Secret", "Charlie5Secret")

# {port}: a loopback port nobody listens on. Some are valid URLs (the database is then
# unreachable), most are not.
SHAPES = [
    pytest.param("chatapi:Alpha7Secret@127.0.0.1:{port}/chatapi", id="no-scheme"),
    pytest.param("postgress://chatapi:Alpha7Secret@127.0.0.1:{port}/chatapi", id="bad-scheme"),
    pytest.param("mysql://chatapi:Alpha7Secret@127.0.0.1:{port}/chatapi", id="other-database"),
    pytest.param("postgresql://chatapi:Alpha7Secret@127.0.0.1:99999/chatapi", id="port-99999"),
    pytest.param("postgresql://chatapi:Alpha7Secret@127.0.0.1:0/chatapi", id="port-0"),
    pytest.param("postgresql://chatapi:Alpha7Secret@127.0.0.1:pg/chatapi", id="port-a-word"),
    pytest.param("postgresql://chatapi:Alpha7Secret@127.0.0.1:{port}x/chatapi", id="port-and-more"),
    pytest.param("postgresql://chatapi:Alpha7Secret", id="no-host"),
    pytest.param("postgresql://:Alpha7Secret@127.0.0.1:{port}/chatapi", id="no-user"),
    pytest.param(
        "postgresql://chatapi:Alpha7Secret garbage!#$&@127.0.0.1:{port}/chatapi",
        id="garbage-after-the-password",
    ),
    pytest.param(
        "postgresql://chatapi:Alpha7Secret\n\t@127.0.0.1:{port}/chatapi", id="control-characters"
    ),
    pytest.param(
        "postgresql://chatapi:Alpha7Secret€Bravo9Secret@127.0.0.1:{port}/chatapi", id="non-ascii"
    ),
    pytest.param(
        "postgresql://chatapi:Alpha7Secret@Bravo9Secret@127.0.0.1:{port}/chatapi",
        id="at-in-the-password",
    ),
    pytest.param(
        "postgresql://chatapi:Alpha7Secret:Bravo9Secret@Charlie5Secret@127.0.0.1:{port}/chatapi",
        id="colon-and-at-in-the-password",
    ),
    pytest.param(
        "postgresql://chatapi:Alpha7Secret@Bravo9Secret/Charlie5Secret@127.0.0.1:{port}/chatapi",
        id="at-and-slash-in-the-password",
    ),
    pytest.param(
        "postgresql://chatapi:Alpha7Secret?Bravo9Secret@Charlie5Secret@127.0.0.1:{port}/chatapi",
        id="question-mark-and-at-in-the-password",
    ),
    pytest.param(
        "postgresql://chatapi:Alpha7Secret/Bravo9Secret,Charlie5Secret@127.0.0.1:{port}/chatapi",
        id="slash-and-comma-in-the-password",
    ),
    pytest.param(
        "postgresql://chatapi:Alpha7Secret%40Bravo9Secret%3A%2F@127.0.0.1:{port}/chatapi",
        id="percent-escapes",
    ),
    pytest.param(
        "postgresql://chatapi:Alpha7Secret%zzBravo9Secret%@127.0.0.1:{port}/chatapi",
        id="broken-percent-escapes",
    ),
    pytest.param(
        "postgresql://chatapi:Alpha7Secret%00Bravo9Secret@127.0.0.1:{port}/chatapi",
        id="percent-nul",
    ),
    pytest.param(
        "postgresql://chatapi:Alpha7Secret@127.0.0.1:{port},127.0.0.1:{port}/chatapi",
        id="multi-host-with-ports",
    ),
    pytest.param(
        "postgresql://chatapi:Alpha7Secret@127.0.0.1,localhost/chatapi?port={port}",
        id="multi-host",
    ),
    pytest.param(
        "postgresql://chatapi:Alpha7Secret@127.0.0.1:{port},,127.0.0.1:{port}/chatapi",
        id="multi-host-with-an-empty-host",
    ),
    pytest.param(
        "postgresql://chatapi:Alpha7Secret/Bravo9Secret@127.0.0.1:{port},127.0.0.1:{port}/chatapi",
        id="multi-host-slash-in-the-password",
    ),
    pytest.param(
        "postgresql://a:Alpha7Secret@127.0.0.1:{port}/a,postgresql://b:Bravo9Secret@127.0.0.1:{port}/b",
        id="comma-list",
    ),
    pytest.param(
        "postgresql://a:Alpha7Secret@127.0.0.1:{port}/a, sqlite:///Bravo9Secret.db",
        id="comma-list-with-sqlite",
    ),
    pytest.param(
        "postgresql://chatapi@127.0.0.1:{port}/chatapi?password=Alpha7Secret",
        id="password-in-the-query",
    ),
    pytest.param(
        "postgresql://chatapi:Alpha7Secret@127.0.0.1:{port}/chatapi?sslmode=bogus",
        id="bad-option",
    ),
    pytest.param(
        "host=127.0.0.1 port={port} user=chatapi password=Alpha7Secret dbname=chatapi",
        id="libpq-keywords",
    ),
    pytest.param(" postgresql://chatapi:Alpha7Secret@127.0.0.1:{port}/chatapi", id="leading-space"),
    pytest.param("postgresql://chatapi:Alpha7Secret@[::1:{port}/chatapi", id="unclosed-ipv6"),
]


@dataclass
class Ran:
    """What one command did: its exit status and everything it wrote."""

    name: str
    returncode: int | None
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def environment(**variables: str) -> dict[str, str]:
    kept = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "READ_DATABASE_URL", "HOST", "PORT"}
        and not key.startswith(("DB_", "AUTH_"))
    }
    return {**kept, **variables}


def run_every_command(env: dict[str, str], tmp_path: Path) -> list[Ran]:
    """`chatapi migrate`, `chatapi list` and `alembic upgrade head` (from the repository, as
    a developer runs it), at once; then `chatapi serve`, asked for chats and readiness if it
    starts, and stopped."""
    commands = {
        "migrate": [sys.executable, "-m", "cli", "migrate"],
        "list": [sys.executable, "-m", "cli", "list"],
        "alembic": [str(BIN / "alembic"), "upgrade", "head"],
    }
    processes = {
        name: subprocess.Popen(
            command,
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, command in commands.items()
    }
    ran = [serve(env, tmp_path)]
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT_SECONDS)
        ran.append(Ran(name, process.returncode, stdout, stderr))
    return ran


def serve(env: dict[str, str], tmp_path: Path) -> Ran:
    port = free_port()
    stdout_path, stderr_path = tmp_path / "serve.out", tmp_path / "serve.err"
    with stdout_path.open("w") as stdout, stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve"],
            env={**env, "HOST": "127.0.0.1", "PORT": str(port)},
            cwd=REPO,
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    try:
        if answers(process, f"http://127.0.0.1:{port}"):
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                for path in ("/chats/", "/chats/", "/health/ready"):
                    http.get(path)
            process.terminate()
        process.wait(timeout=COMMAND_TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return Ran("serve", process.returncode, stdout_path.read_text(), stderr_path.read_text())


def answers(process: subprocess.Popen[str], base_url: str) -> bool:
    """Whether the server came to answer (False: it exited first)."""
    deadline = time.monotonic() + SERVER_START_SECONDS
    while process.poll() is None:
        assert time.monotonic() < deadline, "serve neither answered nor exited"
        try:
            httpx.get(f"{base_url}/health/live", timeout=2)
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        return True
    return False


def assert_nothing_told(ran: list[Ran]) -> None:
    for each in ran:
        for piece in PIECES:
            assert piece not in each.output, (each.name, piece, each.output)
        assert "Traceback" not in each.output, (each.name, each.output)


def assert_one_line_error(each: Ran, variable: str | None = None) -> str:
    """A failed chatapi command: one JSON line on stderr, nothing on stdout."""
    assert each.returncode not in (0, None), (each.name, each.output)
    assert each.stdout == "", (each.name, each.output)
    [line] = each.stderr.strip().splitlines()
    message = json.loads(line)["error"]
    assert isinstance(message, str)
    if variable is not None:
        assert variable in message, (each.name, message)
    return message


def assert_alembic_failed_in_one_line(each: Ran) -> None:
    assert each.returncode not in (0, None), each.output
    # alembic prints it on stdout, and exits 255.
    [failed] = [line for line in each.output.splitlines() if line.startswith("FAILED:")]
    assert failed.startswith(("FAILED: invalid configuration:", "FAILED: database error:")), failed


def in_process(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """What `chatapi <argv>` prints, run in this process (the same code as the console
    script, without the ~1.4 s a process start costs here)."""
    cli_main(list(argv))  # refused, failed, or (replicas unreachable) read on the primary
    printed = capsys.readouterr()
    return printed.out + printed.err


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("variable", ["DATABASE_URL", "READ_DATABASE_URL"])
def test_no_shape_of_url_shows_its_password_in_a_setting_error(
    shape: str,
    variable: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    primary_url: str,
) -> None:
    """Every shape, in process: the setting's refusal (or the database's error) says what is
    wrong in one line and never a piece of the password."""
    monkeypatch.setenv("DATABASE_URL", primary_url)
    monkeypatch.setenv(variable, shape.format(port=free_port()))
    printed = in_process(capsys, "list", "--limit", "1")
    assert not any(piece in printed for piece in PIECES), printed
    assert "Traceback" not in printed, printed


# The subprocess runs (every command, alembic and serve included) take a few shapes, each
# standing for a family: a process start costs ~1.4 s on this machine.
SUBPROCESS_SHAPES = [
    shape
    for shape in SHAPES
    if shape.id
    in {"no-scheme", "bad-scheme", "port-99999", "at-in-the-password", "percent-escapes"}
]


@pytest.mark.parametrize("shape", SUBPROCESS_SHAPES)
def test_a_database_url_of_any_shape_never_shows_its_password(shape: str, tmp_path: Path) -> None:
    env = environment(DATABASE_URL=shape.format(port=free_port()))

    ran = run_every_command(env, tmp_path)

    assert_nothing_told(ran)
    by_name = {each.name: each for each in ran}
    assert_one_line_error(by_name["migrate"])
    assert_one_line_error(by_name["list"])
    assert_alembic_failed_in_one_line(by_name["alembic"])
    served = by_name["serve"]
    if served.returncode == 2:  # refused at start-up; else it served 503 until stopped
        assert_one_line_error(served, "DATABASE_URL")
    else:
        assert served.returncode == 0, served.output
        assert "database unavailable" in served.stderr, served.output


@pytest.fixture(scope="module")
def primary_url(databases: EmptyDatabases) -> str:
    """A migrated PostgreSQL database the replicas would be standbys of."""
    url = databases.new("postgresql")
    migrations.upgrade(url)
    return url


@pytest.mark.parametrize("shape", SUBPROCESS_SHAPES)
def test_a_read_database_url_of_any_shape_never_shows_its_password(
    shape: str, primary_url: str, tmp_path: Path
) -> None:
    env = environment(DATABASE_URL=primary_url, READ_DATABASE_URL=shape.format(port=free_port()))

    ran = run_every_command(env, tmp_path)

    assert_nothing_told(ran)
    by_name = {each.name: each for each in ran}
    refused = by_name["migrate"].returncode != 0
    if refused:  # not a URL of replicas: every command says so at once
        for name in ("migrate", "list", "serve"):
            assert_one_line_error(by_name[name], "READ_DATABASE_URL")
        assert_alembic_failed_in_one_line(by_name["alembic"])
    else:  # replicas that cannot be reached: reads go to the primary
        for each in ran:
            assert each.returncode == 0, (each.name, each.output)
        assert "set aside" in by_name["list"].stderr + by_name["serve"].stderr, ran


# --- a password the server refuses ----------------------------------------------------------

RIGHT_PASSWORD = "Right-Charlie5Secret"


@pytest.fixture(scope="module")
def asks_for_a_password(postgres_cluster: PostgresCluster | None) -> Iterator[str]:
    """A cluster of its own that checks passwords (SCRAM), with a migrated database; the URL
    of that database, with the right password."""
    if postgres_cluster is None:
        pytest.skip("needs the server binaries of the suite's throwaway cluster")
    with started_cluster(postgres_cluster.bindir) as cluster:
        cluster.sql(f"ALTER USER postgres PASSWORD '{RIGHT_PASSWORD}'")
        cluster.sql("CREATE DATABASE chatapi")
        hba = cluster.root / "data" / "pg_hba.conf"
        hba.write_text(
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
            "host all all ::1/128 scram-sha-256\n"
        )
        cluster.sql("SELECT pg_reload_conf()")  # psql -h 127.0.0.1: still trusted until now
        url = f"postgresql+psycopg2://postgres:{RIGHT_PASSWORD}@127.0.0.1:{cluster.port}/chatapi"
        migrations.upgrade(url)
        yield url


@pytest.mark.parametrize(
    "password",
    ["Alpha7Secret", "Alpha7Secret%40Bravo9Secret", "Alpha7Secret%27%5C Bravo9Secret", ""],
    ids=["wrong", "escaped-at", "quote-backslash-space", "none"],
)
def test_a_refused_password_is_not_shown(
    asks_for_a_password: str, password: str, tmp_path: Path
) -> None:
    port = make_url(asks_for_a_password).port
    user = f"postgres:{password}" if password else "postgres"
    env = environment(DATABASE_URL=f"postgresql://{user}@127.0.0.1:{port}/chatapi")

    ran = run_every_command(env, tmp_path)

    assert_nothing_told(ran)
    by_name = {each.name: each for each in ran}
    for name in ("migrate", "list"):
        message = assert_one_line_error(by_name[name])
        assert "password" in message, message  # authentication failed / no password supplied
    assert_alembic_failed_in_one_line(by_name["alembic"])
    assert "database unavailable" in by_name["serve"].stderr, by_name["serve"].output


def test_the_right_password_is_not_shown_either(asks_for_a_password: str, tmp_path: Path) -> None:
    ran = run_every_command(environment(DATABASE_URL=asks_for_a_password), tmp_path)

    for each in ran:
        assert each.returncode == 0, (each.name, each.output)
        assert RIGHT_PASSWORD not in each.output, (each.name, each.output)
        assert "Traceback" not in each.output, (each.name, each.output)
    migrated = json.loads(next(each for each in ran if each.name == "migrate").stdout)
    assert migrated == {"migrated": asks_for_a_password.replace(f"postgres:{RIGHT_PASSWORD}@", "")}
