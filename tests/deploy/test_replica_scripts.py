"""deploy/primary-replication.sh and deploy/standby-entrypoint.sh, run against PostgreSQL.

The db service's cluster is made as the postgres image makes it, then its first-start script
runs (tests/deploy/postgres_image.py); the db-replica service's entrypoint and command then
run with its environment, and must start a hot standby that streams db's writes and lets
the api read with its READ_DATABASE_URL's credentials.
"""

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.deploy import compose as c
from tests.deploy.conftest import EnvFiles
from tests.deploy.image import REPO
from tests.deploy.postgres_image import (
    SOURCED_AND_GONE_ON,
    Primary,
    Standby,
    describe,
    mounted,
    run,
    script_env,
)
from tests.deploy.test_compose import POSTGRES_DATA

Json = dict[str, Any]
STANDBY = "db-replica"
INITDB_D = "/docker-entrypoint-initdb.d/"
REPLICATION_SCRIPT = REPO / "deploy" / "primary-replication.sh"


def host_script(service: c.Service, target: str) -> Path:
    """The file of this repository that the service mounts at `target`."""
    source = c.volume_mounts(service)[target]
    return (REPO / source).resolve()


def first_start_scripts(compose: Json) -> list[Path]:
    """db's /docker-entrypoint-initdb.d/ scripts, in the order the image runs them (by name)."""
    db = c.service(compose, "db")
    targets = sorted(t for t in c.volume_mounts(db) if t.startswith(INITDB_D))
    return [host_script(db, target) for target in targets]


def basebackup(
    primary: Primary, user: str, password: str, target: Path
) -> subprocess.CompletedProcess[str]:
    """pg_basebackup as `user` from 127.0.0.1, as the postgres user."""
    env = script_env(primary.bindir, {"PGPASSWORD": password})
    return run(
        primary.run_as(
            [
                *env,
                str(primary.bindir / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                user,
                "-D",
                str(target),
                "-X",
                "stream",
                "--checkpoint=fast",
                "--no-sync",
            ]
        )
    )


@dataclass
class PrimaryRun:
    primary: Primary
    refused_before: subprocess.CompletedProcess[str]
    first: subprocess.CompletedProcess[str]
    again: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def primary(bindir: Path, compose: Json, env_file_contents: EnvFiles) -> Iterator[PrimaryRun]:
    """db, as the image makes it: initdb, its pg_hba line, POSTGRES_DB, then its first-start
    scripts, then the replication one again (as by hand on a volume that already had it)."""
    environment = c.container_environment(c.service(compose, "db"), env_file_contents)
    made = Primary.create(bindir, environment)
    try:
        made.start()
        made.create_database()
        # Before the script: the image's `host all all all` does not let a standby in.
        refused = basebackup(
            made, made.user, environment["POSTGRES_PASSWORD"], made.root / "refused"
        )
        ran = {script: made.run_script(script) for script in first_start_scripts(compose)}
        first = ran.pop(REPLICATION_SCRIPT)
        for result in ran.values():  # the others: tests/deploy/test_database_roles.py
            assert result.returncode == 0, describe(result)
        # Again, sourced as the image sources a .sh that is not executable.
        again = made.run_script(REPLICATION_SCRIPT, sourced=True)
        yield PrimaryRun(made, refused, first, again)
    finally:
        made.remove()


def test_the_images_own_pg_hba_line_lets_no_replication_in(primary: PrimaryRun) -> None:
    """Even the superuser: `all` in pg_hba.conf's database column is no replication."""
    result = primary.refused_before
    assert result.returncode != 0, describe(result)
    assert "no pg_hba.conf entry for replication connection" in result.stderr, describe(result)


def test_the_primary_script_makes_a_role_that_may_replicate(primary: PrimaryRun) -> None:
    for result in (primary.first, primary.again):
        assert result.returncode == 0, describe(result)
        assert result.stderr == "", describe(result)
    assert primary.again.stdout.splitlines()[-1] == SOURCED_AND_GONE_ON, describe(primary.again)
    user = primary.primary.environment["REPLICATION_USER"]
    attributes = primary.primary.sql(
        f"SELECT rolcanlogin, rolreplication, rolsuper FROM pg_roles WHERE rolname = '{user}'"
    )
    assert attributes == "t|t|f", attributes


def test_the_primary_script_adds_one_replication_line_to_pg_hba(primary: PrimaryRun) -> None:
    user = primary.primary.environment["REPLICATION_USER"]
    lines = primary.primary.hba.read_text().splitlines()
    assert lines.count(f"host replication {user} samenet scram-sha-256") == 1, lines
    # After the image's own line, which it leaves as it was.
    assert lines.index(f"host replication {user} samenet scram-sha-256") > lines.index(
        "host all all all scram-sha-256"
    )


def test_the_replication_role_copies_the_primary_with_its_password_only(
    primary: PrimaryRun, tmp_path: Path
) -> None:
    made = primary.primary
    user = made.environment["REPLICATION_USER"]
    wrong = basebackup(made, user, "not-the-password", made.root / "wrong")
    assert wrong.returncode != 0, describe(wrong)
    assert "password authentication failed" in wrong.stderr, describe(wrong)
    copied = basebackup(made, user, made.environment["REPLICATION_PASSWORD"], made.root / "ok")
    assert copied.returncode == 0, describe(copied)


@pytest.fixture(scope="module")
def standby(
    bindir: Path, replica_compose: Json, primary: PrimaryRun, env_file_contents: EnvFiles
) -> Iterator[Standby]:
    """db-replica's entrypoint and command, over a new volume, with a half-made copy left in
    it by a container stopped mid-way (which it must throw away)."""
    service = c.service(replica_compose, STANDBY)
    made = Standby.create(
        bindir, c.container_environment(service, env_file_contents), POSTGRES_DATA
    )
    partial = Path(f"{made.data}.partial")
    partial.mkdir()
    (partial / "PG_VERSION").write_text("15\n")
    for path in (partial, partial / "PG_VERSION"):
        shutil.chown(path, user=made.root.owner(), group=made.root.group())
    shell, script = service["entrypoint"]
    entrypoint = [shell, str(mounted(host_script(service, script), made.root))]
    try:
        made.start(entrypoint, c.command(service), primary.primary)
        yield made
    finally:
        made.remove()


def replica_rows(standby: Standby, primary: Primary, query: str) -> str:
    return standby.sql(query, user=primary.user, database=primary.environment["POSTGRES_DB"])


def wait_for(standby: Standby, primary: Primary, query: str, expected: str) -> None:
    """Poll the standby until `query` answers `expected`: it streams, so it catches up."""
    for _ in range(300):
        try:
            if replica_rows(standby, primary, query) == expected:
                return
        except AssertionError:
            pass  # a table the standby has not replayed yet
        time.sleep(0.1)
    pytest.fail(f"the standby never answered {expected!r} to {query!r}\n{standby.output()}")


def test_the_standby_is_a_streaming_hot_standby_of_db(
    standby: Standby, primary: PrimaryRun
) -> None:
    made = primary.primary
    assert replica_rows(standby, made, "SELECT pg_is_in_recovery()") == "t"
    wait_for(standby, made, "SELECT status FROM pg_stat_wal_receiver", "streaming")
    assert (standby.data / "standby.signal").exists()
    conninfo = (standby.data / "postgresql.auto.conf").read_text()
    assert f"user={made.environment['REPLICATION_USER']}" in conninfo, conninfo
    assert not Path(f"{standby.data}.partial").exists()
    assert "copying the primary" in standby.stderr.read_text(), standby.output()


def test_the_standby_shows_the_primarys_writes_and_refuses_its_own(
    standby: Standby, primary: PrimaryRun
) -> None:
    made = primary.primary
    database = made.environment["POSTGRES_DB"]
    made.sql("CREATE TABLE IF NOT EXISTS replicated (note text)", database=database)
    made.sql("INSERT INTO replicated VALUES ('written on db')", database=database)
    wait_for(standby, made, "SELECT note FROM replicated", "written on db")
    refused = run(
        [
            str(standby.bindir / "psql"),
            "-h",
            str(standby.root),
            "-p",
            str(standby.port),
            "-U",
            made.user,
            "-d",
            database,
            "-XAtqc",
            "INSERT INTO replicated VALUES ('on the standby')",
        ]
    )
    assert "read-only transaction" in refused.stderr, describe(refused)


def test_the_api_reads_from_the_standby_with_its_read_database_url(
    standby: Standby, primary: PrimaryRun, replica_compose: Json, env_file_contents: EnvFiles
) -> None:
    """The URL's role, with the api's PGPASSWORD, over TCP, as from the api's container: the
    standby's roles and pg_hba.conf are the primary's copies, whose `host all all all
    scram-sha-256` lets them in. And the role is the api's there too: it reads, nothing more."""
    api = c.container_environment(c.service(replica_compose, "api"), env_file_contents)
    url = make_url(api["READ_DATABASE_URL"]).set(
        host="127.0.0.1", port=standby.port, password=api["PGPASSWORD"]
    )
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT pg_is_in_recovery()")).scalar() is True
            assert connection.execute(text("SELECT current_user")).scalar() == url.username
            superuser = connection.execute(
                text("SELECT usesuper FROM pg_user WHERE usename = current_user")
            )
            assert superuser.scalar() is False
    finally:
        engine.dispose()


def test_the_standbys_healthcheck_passes(standby: Standby, replica_compose: Json) -> None:
    argv = c.healthcheck_argv(c.service(replica_compose, STANDBY))
    env = script_env(standby.bindir, {"PGHOST": str(standby.root), "PGPORT": str(standby.port)})
    result = run(standby.run_as([*env, *argv]))
    assert result.returncode == 0, describe(result)


def test_a_restarted_standby_keeps_its_copy_and_streams_again(
    standby: Standby, primary: PrimaryRun, replica_compose: Json
) -> None:
    service = c.service(replica_compose, STANDBY)
    made = primary.primary
    identity = (standby.data / "global" / "pg_control").stat().st_ino
    standby.stop()
    database = made.environment["POSTGRES_DB"]
    made.sql("CREATE TABLE IF NOT EXISTS replicated (note text)", database=database)
    made.sql("INSERT INTO replicated VALUES ('while it was down')", database=database)
    shell, script = service["entrypoint"]
    standby.start([shell, str(host_script(service, script))], c.command(service), made)
    assert (standby.data / "global" / "pg_control").stat().st_ino == identity  # no new copy
    wait_for(standby, made, "SELECT status FROM pg_stat_wal_receiver", "streaming")
    wait_for(standby, made, "SELECT count(*) FROM replicated WHERE note = 'while it was down'", "1")
