"""`make fuzz`: Schemathesis against the service as `make run` serves it, on a throwaway PostgreSQL.

    python -m tests.fuzz.live [--max-examples N]

Starts a PostgreSQL cluster of its own (devtools/postgres_cluster.py), applies the migrations and
serves with the same two commands as `make run` (`chatapi migrate`, then `chatapi serve`, on a
free loopback port), and runs `st run` on the served /openapi.json with the settings of
tests/fuzz/schemathesis.toml: every check, positive and negative data, all four phases
(examples, coverage, fuzzing, stateful), the fixed seed. It exits with Schemathesis's status, so
any finding fails it; the server and the cluster are stopped and removed whatever happens.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from devtools.ports import free_port
from devtools.postgres_cluster import NO_BINARIES, find_bindir, started_cluster
from tests.fuzz.config import CONFIG_FILE, SECRET, with_token

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the virtualenv's bin/, as the Makefile's $(BIN)
# Per operation in the fuzzing phase, and scenarios of the stateful phase: several times the
# in-process run of `make test`, about five minutes on two cores.
MAX_EXAMPLES = 1000
START_SECONDS = 30.0
STOP_SECONDS = 15.0


def wait_ready(base_url: str, server: subprocess.Popen[bytes]) -> None:
    """Until /health/ready answers 200: the database answers and is migrated."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"`chatapi serve` exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"{base_url}/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{base_url}/health/ready did not answer 200 within {START_SECONDS} s")


@contextmanager
def postgres() -> Iterator[str]:
    """The URL of a database on a throwaway cluster, removed on exit."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError(NO_BINARIES)
    with started_cluster(bindir) as cluster:
        yield cluster.url


@contextmanager
def served(env: Mapping[str, str], scratch: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`chatapi migrate`, then `chatapi serve` until exit, as `make run` does."""
    subprocess.run([str(BIN / "chatapi"), "migrate"], cwd=REPO, env=env, check=True)
    with (
        (scratch / "server.stdout").open("wb") as out,
        (scratch / "server.stderr").open("wb") as err,
    ):
        server = subprocess.Popen(
            [str(BIN / "chatapi"), "serve"], cwd=REPO, env=env, stdout=out, stderr=err
        )
    try:
        wait_ready(f"http://{env['HOST']}:{env['PORT']}", server)
        yield server
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)  # what Ctrl-C on `make run` sends
            try:
                server.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def schemathesis_command(base_url: str, max_examples: int) -> list[str]:
    return [
        str(BIN / "st"),
        "--config-file",
        str(CONFIG_FILE),
        "run",
        f"{base_url}/openapi.json",
        "--max-examples",
        str(max_examples),
        # Spelled out, though they are the defaults. The checks are those of schemathesis.toml
        # (every one): `--checks all` would put back the one tests/fuzz/hooks.py replaces.
        "--mode",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.live", description=__doc__)
    parser.add_argument("--max-examples", type=int, default=MAX_EXAMPLES)
    args = parser.parse_args(argv)

    with postgres() as database_url, tempfile.TemporaryDirectory(prefix="chatapi-fuzz-") as tmp:
        scratch = Path(tmp)
        env = with_token(
            {
                **os.environ,
                "DATABASE_URL": database_url,
                "HOST": "127.0.0.1",
                "PORT": str(free_port()),
                # As deployments serve it; Schemathesis sends the token (config.with_token).
                "AUTH_MODE": "required",
                "AUTH_JWT_SECRET": SECRET,
                # Hypothesis's caches, which would go to a .hypothesis/ in the repository.
                "HYPOTHESIS_STORAGE_DIRECTORY": str(scratch / "hypothesis"),
            }
        )
        base_url = f"http://{env['HOST']}:{env['PORT']}"
        with served(env, scratch) as server:
            print(f"chatapi serving on {base_url}, PostgreSQL at {database_url}", flush=True)
            command = schemathesis_command(base_url, args.max_examples)
            status = subprocess.run(command, cwd=REPO, env=env)
            crashed = server.poll() is not None
        stderr = (scratch / "server.stderr").read_text(errors="replace")
        if crashed or "Traceback" in stderr:
            print(f"the server crashed or logged an exception:\n{stderr}", file=sys.stderr)
            return status.returncode or 1
        return status.returncode


if __name__ == "__main__":
    sys.exit(main())
