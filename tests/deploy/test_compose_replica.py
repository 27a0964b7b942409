"""deploy/compose.replica.yml over docker-compose.yml: the api's reads on a hot standby.

`docker compose -f docker-compose.yml -f deploy/compose.replica.yml up` adds db-replica, a
PostgreSQL 15 hot standby that copies db with pg_basebackup (deploy/standby-entrypoint.sh)
as the role that deploy/primary-replication.sh made on db, and points the api's
READ_DATABASE_URL at it. Without the second file nothing reads from a replica. What the two
scripts do is run by tests/deploy/test_replica_scripts.py.
"""

import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

from ruamel.yaml import YAML
from sqlalchemy.engine import make_url

from infrastructure.settings import Settings
from tests.deploy import compose as c
from tests.deploy.conftest import EnvFiles
from tests.deploy.image import COMPOSE_FILE, REPLICA_COMPOSE_FILE, REPO
from tests.deploy.test_compose import POSTGRES_DATA, validate

Json = dict[str, Any]
STANDBY = "db-replica"
PRIMARY_SCRIPT = REPO / "deploy" / "primary-replication.sh"
STANDBY_SCRIPT = REPO / "deploy" / "standby-entrypoint.sh"
ROLES_SCRIPT = REPO / "deploy" / "primary-roles.sh"
MAKE_ENV_FILES = REPO / "deploy" / "make-env-files.sh"
INITDB_D = PurePosixPath("/docker-entrypoint-initdb.d")


def host_path(source: str) -> Path:
    """A bind mount's source on this machine: Compose resolves the paths of every file
    against the first file's directory, the override's included."""
    return (COMPOSE_FILE.parent / source).resolve()


def mount_of(service: c.Service, script: Path) -> str:
    """Where `script` is mounted in the service's container, read-only (fails otherwise)."""
    found = [
        target
        for target, source in c.volume_mounts(service).items()
        if source.startswith(".") and host_path(source) == script
    ]
    assert len(found) == 1, service.get("volumes")
    volumes = [str(entry) for entry in service.get("volumes") or []]
    assert any(entry.endswith(f":{found[0]}:ro") for entry in volumes), volumes
    return found[0]


def test_the_override_is_valid_by_the_compose_specification() -> None:
    result = validate(REPLICA_COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_merged_file_is_valid_by_the_compose_specification(
    replica_compose: Json, tmp_path: Path
) -> None:
    merged = tmp_path / "docker-compose.yml"
    with merged.open("w") as out:
        YAML(typ="safe", pure=True).dump(replica_compose, out)
    result = validate(merged)
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_the_override_there_is_no_standby_and_reads_go_to_db(compose: Json) -> None:
    assert STANDBY not in compose["services"]
    assert "READ_DATABASE_URL" not in c.environment(c.service(compose, "api"))


def test_the_override_adds_the_standby_and_changes_only_the_apis_reads(
    compose: Json, replica_override: Json, replica_compose: Json
) -> None:
    added = replica_override["services"]
    assert set(added) == {STANDBY, "api"}, sorted(added)
    assert set(added["api"]) == {"environment", "depends_on"}, added["api"]
    assert set(c.environment(added["api"])) == {"READ_DATABASE_URL"}
    for name, service in compose["services"].items():
        if name != "api":
            assert replica_compose["services"][name] == service, name


def test_the_standby_is_the_primarys_postgres_image(replica_compose: Json) -> None:
    standby = c.service(replica_compose, STANDBY)
    assert standby.get("image") == c.service(replica_compose, "db")["image"] == "postgres:15"
    assert "build" not in standby, standby


def test_the_standby_keeps_its_copy_in_a_volume_of_its_own(replica_compose: Json) -> None:
    standby = c.service(replica_compose, STANDBY)
    volume = c.volume_mounts(standby).get(POSTGRES_DATA)
    assert volume, standby.get("volumes")
    assert not volume.startswith(("/", ".", "~")), f"{volume} is a bind mount, not a volume"
    assert volume in (replica_compose.get("volumes") or {}), volume
    assert volume != c.volume_mounts(c.service(replica_compose, "db"))[POSTGRES_DATA]
    # PGDATA is a directory in it, so that the copy can be renamed into place once whole.
    pgdata = PurePosixPath(c.environment(standby)["PGDATA"])
    assert pgdata.parent == PurePosixPath(POSTGRES_DATA), pgdata


def test_the_standby_runs_its_entrypoint_script_then_postgres_as_postgres(
    replica_compose: Json,
) -> None:
    """The image's entrypoint would initdb the empty volume: the script copies db instead."""
    standby = c.service(replica_compose, STANDBY)
    assert standby.get("entrypoint") == ["sh", mount_of(standby, STANDBY_SCRIPT)]
    assert c.command(standby) == ["postgres"]
    assert standby.get("user") == "postgres"


def test_the_standby_copies_db_as_the_role_db_made_for_it(
    replica_compose: Json, env_file_contents: EnvFiles
) -> None:
    primary = c.container_environment(c.service(replica_compose, "db"), env_file_contents)
    standby = c.container_environment(c.service(replica_compose, STANDBY), env_file_contents)
    assert standby["PRIMARY_HOST"] == "db"
    assert "PGPORT" not in standby  # db's default port, 5432
    for name in ("REPLICATION_USER", "REPLICATION_PASSWORD"):
        assert standby[name], name
        assert standby[name] == primary[name], name
    assert standby["REPLICATION_USER"] != primary.get("POSTGRES_USER", "postgres")


def test_db_makes_the_replication_role_when_its_volume_is_created(compose: Json) -> None:
    """The image runs /docker-entrypoint-initdb.d/*.sh at its first start. The script is in
    docker-compose.yml itself: a volume made without the override can take a standby later."""
    db = c.service(compose, "db")
    target = PurePosixPath(mount_of(db, PRIMARY_SCRIPT))
    assert target.parent == INITDB_D, target
    assert target.suffix == ".sh", target
    assert c.environment(db).get("REPLICATION_USER"), c.environment(db)


def test_the_standby_starts_once_db_is_healthy_and_is_healthy_once_it_takes_queries(
    replica_compose: Json,
) -> None:
    standby = c.service(replica_compose, STANDBY)
    assert c.depends_on(standby) == {"db": "service_healthy"}
    argv = c.healthcheck_argv(standby)
    assert "pg_isready" in " ".join(argv).split(), argv
    # The copy comes first: failures while it is made do not count.
    assert standby["healthcheck"].get("start_period"), standby["healthcheck"]
    assert standby.get("restart") == "unless-stopped"


def test_the_standby_publishes_no_port(replica_compose: Json) -> None:
    assert not c.service(replica_compose, STANDBY).get("ports")


def test_the_api_reads_from_the_standby_as_it_writes_to_db(replica_compose: Json) -> None:
    """A copy of db: its roles and databases, so the api's role and its one password
    (PGPASSWORD, none in either URL)."""
    api = c.environment(c.service(replica_compose, "api"))
    write = make_url(api["DATABASE_URL"])
    read = make_url(api["READ_DATABASE_URL"])
    assert read.host == STANDBY
    assert read.port in (None, 5432)
    assert read.drivername == write.drivername
    assert (read.username, read.password, read.database) == (
        write.username,
        None,
        write.database,
    )
    settings = Settings(
        database_url=api["DATABASE_URL"], read_database_url=api["READ_DATABASE_URL"]
    )
    assert settings.read_database_url == api["READ_DATABASE_URL"]


def test_the_api_keeps_its_start_up_order_and_waits_for_the_standby(
    compose: Json, replica_compose: Json
) -> None:
    before = c.depends_on(c.service(compose, "api"))
    after = c.depends_on(c.service(replica_compose, "api"))
    assert after == {**before, STANDBY: "service_healthy"}, after
    # A standby restarted later does not restart the api: its reads go to db meanwhile.
    assert not replica_compose["services"]["api"]["depends_on"][STANDBY].get("restart")


def test_the_bind_mounts_of_the_override_are_files_of_this_repository(
    replica_override: Json,
) -> None:
    for name, service in replica_override["services"].items():
        for source in c.volume_mounts(service).values():
            if source.startswith("."):
                assert host_path(source).is_file(), (name, source)


def test_the_header_of_docker_compose_yml_says_how_to_start_with_the_standby() -> None:
    header = COMPOSE_FILE.read_text().split("\nname:")[0]
    command = "docker compose -f docker-compose.yml -f deploy/compose.replica.yml up --build"
    assert command in header, header
    assert command in REPLICA_COMPOSE_FILE.read_text()


def test_the_merge_follows_composes_rules() -> None:
    """What the tests above read is what Compose would run."""
    base = {
        "services": {
            "s": {
                "command": ["a"],
                "environment": ["A=1", "B=2"],
                "depends_on": ["x"],
                "volumes": ["v:/data", "./f:/f:ro"],
                "healthcheck": {"test": ["CMD", "a"], "interval": "5s"},
                "dns": ["1.1.1.1"],
            }
        },
        "volumes": {"v": None},
    }
    override = {
        "services": {
            "s": {
                "command": ["b"],
                "environment": {"B": "3", "C": "4"},
                "depends_on": {"y": {"condition": "service_healthy"}},
                "volumes": ["w:/data"],
                "healthcheck": {"test": ["CMD", "b"]},
                "dns": ["8.8.8.8"],
            },
            "t": {"image": "t"},
        },
        "volumes": {"w": None},
    }
    assert c.merge(base, override) == {
        "services": {
            "s": {
                "command": ["b"],
                "environment": {"A": "1", "B": "3", "C": "4"},
                "depends_on": {
                    "x": {"condition": "service_started"},
                    "y": {"condition": "service_healthy"},
                },
                "volumes": ["w:/data", "./f:/f:ro"],
                "healthcheck": {"test": ["CMD", "b"], "interval": "5s"},
                "dns": ["1.1.1.1", "8.8.8.8"],
            },
            "t": {"image": "t"},
        },
        "volumes": {"v": None, "w": None},
    }


def test_the_scripts_are_posix_sh() -> None:
    for script in (PRIMARY_SCRIPT, STANDBY_SCRIPT, ROLES_SCRIPT, MAKE_ENV_FILES):
        assert script.read_text().startswith("#!/bin/sh\n"), script
        # /bin/sh: dash on Debian, as in the postgres:15 image; -n reads without running.
        result = subprocess.run(
            ["/bin/sh", "-n", str(script)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{script}: {result.stderr}"
