"""deploy/primary-roles.sh, run against PostgreSQL 15: the db service's roles.

db's cluster is made as the postgres image makes it, with db's environment and env file
(tests/deploy/postgres_image.py), and its first-start scripts run. Then the migrate service's
command runs with its environment (as the role owning the schema), and the api's with its
own (as the role that may only read and write rows), both over TCP with the passwords of
their env files, as from their containers; only the host and port of `db` change.
"""

import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from devtools.ports import free_port
from infrastructure import migrations
from tests.deploy import compose as c
from tests.deploy import runtime
from tests.deploy.conftest import EnvFiles
from tests.deploy.image import REPO, Image
from tests.deploy.postgres_image import SOURCED_AND_GONE_ON, Primary, describe
from tests.deploy.runtime import Server
from tests.deploy.test_replica_scripts import first_start_scripts

Json = dict[str, Any]
ROLES_SCRIPT = REPO / "deploy" / "primary-roles.sh"
INSUFFICIENT_PRIVILEGE = "42501"
# Every kind of relation in the schema after the migrations: tables, views, sequences.
RELATIONS = (
    "SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"
)


def service_env(
    image: Image, compose: Json, name: str, env_files: EnvFiles, port: int, **overrides: str
) -> dict[str, str]:
    """What the service's container runs with (image ENV, env files, `environment`), its
    DATABASE_URL's `db` replaced by 127.0.0.1:port."""
    service = c.service(compose, name)
    env = {**image.environment(), **c.container_environment(service, env_files)}
    url = make_url(env["DATABASE_URL"])
    assert url.host == "db", url
    env["DATABASE_URL"] = url.set(host="127.0.0.1", port=port).render_as_string(False)
    return {**env, **overrides}


def engine_of(env: dict[str, str]) -> Engine:
    """An engine connecting as the process with `env` does: its URL, its PGPASSWORD."""
    url = make_url(env["DATABASE_URL"]).set(password=env["PGPASSWORD"])
    return create_engine(url)


@dataclass
class Database:
    primary: Primary
    migrate_env: dict[str, str]
    api_env: dict[str, str]
    roles: dict[str, str]  # owner, app, superuser
    again: subprocess.CompletedProcess[str]

    def as_role(self, role: str) -> Engine:
        return engine_of(self.migrate_env if role == "owner" else self.api_env)


def migrate(image: Image, compose: Json, env: dict[str, str]) -> None:
    result = runtime.run(c.command(c.service(compose, "migrate")), env)
    assert result.returncode == 0, describe(result)
    assert "Traceback" not in result.stderr, describe(result)


@pytest.fixture(scope="module")
def database(
    bindir: Path,
    compose: Json,
    image: Image,
    env_file_contents: EnvFiles,
) -> Iterator[Database]:
    """db as the image makes it, its scripts run (the roles one again, sourced, as by hand),
    then migrate's command, as migrate runs it."""
    db = c.container_environment(c.service(compose, "db"), env_file_contents)
    made = Primary.create(bindir, db)
    try:
        made.start()
        made.create_database()
        for script in first_start_scripts(compose):
            result = made.run_script(script)
            assert result.returncode == 0, describe(result)
        again = made.run_script(ROLES_SCRIPT, sourced=True)
        migrate_env = service_env(image, compose, "migrate", env_file_contents, made.port)
        api_env = service_env(image, compose, "api", env_file_contents, made.port)
        migrate(image, compose, migrate_env)
        roles = {
            "owner": db["CHATAPI_OWNER_USER"],
            "app": db["CHATAPI_APP_USER"],
            "superuser": made.user,
        }
        yield Database(made, migrate_env, api_env, roles, again)
    finally:
        made.remove()


def refused(engine: Engine, statement: str) -> str:
    """The error PostgreSQL answers `statement` with (which must be one), rolled back."""
    with engine.connect() as connection:
        with pytest.raises(DBAPIError) as raised:
            connection.execute(text(statement))
        connection.rollback()
    return str(getattr(raised.value.orig, "pgcode", ""))


def test_the_script_runs_again_changing_nothing(database: Database) -> None:
    assert database.again.returncode == 0, describe(database.again)
    assert database.again.stderr == "", describe(database.again)
    assert database.again.stdout.splitlines()[-1] == SOURCED_AND_GONE_ON


def test_neither_role_is_a_superuser_or_may_make_roles_or_databases(database: Database) -> None:
    for role in ("owner", "app"):
        name = database.roles[role]
        attributes = database.primary.sql(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, "
            f"rolbypassrls FROM pg_roles WHERE rolname = '{name}'"
        )
        assert attributes == "t|f|f|f|f|f", (name, attributes)


def test_the_owner_owns_the_database_its_schema_and_all_the_migrations_made(
    database: Database,
) -> None:
    owner = database.roles["owner"]
    database_name = database.primary.environment["POSTGRES_DB"]
    sql = database.primary.sql
    assert (
        sql(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{database_name}'")
        == owner
    )
    assert (
        sql(
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'public'",
            database_name,
        )
        == owner
    )
    relations = sql(RELATIONS, database_name).splitlines()
    assert any(line.startswith("chats|r|") for line in relations), relations
    assert any("|S|" in line for line in relations), relations  # a sequence, or the test is moot
    for line in relations:
        assert line.endswith(f"|{owner}"), line


def test_the_api_reads_and_writes_rows(database: Database) -> None:
    engine = database.as_role("app")
    try:
        with engine.begin() as connection:
            assert connection.execute(text("SELECT current_user")).scalar() == database.roles["app"]
            chat_id = connection.execute(
                text("INSERT INTO chats (title, created_at) VALUES ('rows', now()) RETURNING id")
            ).scalar()
            assert (
                connection.execute(
                    text("SELECT title FROM chats WHERE id = :id"), {"id": chat_id}
                ).scalar()
                == "rows"
            )
            connection.execute(
                text("UPDATE chats SET title = 'renamed' WHERE id = :id"), {"id": chat_id}
            )
            connection.execute(text("DELETE FROM chats WHERE id = :id"), {"id": chat_id})
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE intruder (id int)",
        "CREATE VIEW intruder AS SELECT 1",
        "CREATE TEMPORARY TABLE intruder (id int)",
        "CREATE SCHEMA intruder",
        "DROP TABLE messages",
        "ALTER TABLE chats ADD COLUMN intruder int",
        "TRUNCATE chats",
        "CREATE INDEX intruder ON chats (title)",
        "SELECT setval(pg_get_serial_sequence('chats', 'id'), 1)",
    ],
)
def test_the_api_cannot_change_the_schema(database: Database, statement: str) -> None:
    engine = database.as_role("app")
    try:
        assert refused(engine, statement) == INSUFFICIENT_PRIVILEGE, statement
    finally:
        engine.dispose()
    assert "intruder" not in database.primary.sql(
        RELATIONS, database.primary.environment["POSTGRES_DB"]
    )


def test_what_a_later_migration_makes_is_the_apis_to_read_and_write(database: Database) -> None:
    """Default privileges: a new table of the owner's, with its sequence, needs no grant."""
    owner, app = database.as_role("owner"), database.as_role("app")
    try:
        with owner.begin() as connection:
            connection.execute(text("CREATE TABLE later (id bigserial PRIMARY KEY, note text)"))
        with app.begin() as connection:
            connection.execute(text("INSERT INTO later (note) VALUES ('granted')"))
            assert connection.execute(text("SELECT note FROM later")).scalar() == "granted"
        assert refused(app, "DROP TABLE later") == INSUFFICIENT_PRIVILEGE
    finally:
        with owner.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS later"))
        owner.dispose()
        app.dispose()


def test_no_other_role_may_connect(database: Database) -> None:
    """PUBLIC has lost CONNECT: a role made later for something else sees nothing here."""
    password = secrets.token_hex(16)
    database.primary.sql(f"CREATE ROLE stranger LOGIN PASSWORD '{password}'")
    url = make_url(database.api_env["DATABASE_URL"]).set(username="stranger", password=password)
    engine = create_engine(url)
    try:
        with pytest.raises(DBAPIError, match="permission denied for database"):
            engine.connect().close()
    finally:
        engine.dispose()
        database.primary.sql("DROP ROLE stranger")


def test_the_api_serves_everything_as_its_role(
    database: Database, image: Image, compose: Json, tmp_path: Path
) -> None:
    """The image's start-up command with the api's environment (only HOST and PORT changed):
    ready, and every kind of write it makes (a chat, a message, a member's read, a delete, an
    API key from the CLI as in its container) goes through with the role's rights."""
    env = {**database.api_env, "HOST": "127.0.0.1", "PORT": str(free_port())}
    cli = ["python", "-m", "cli"]
    with (
        Server(image.startup_argv(), env, tmp_path, image.stop_signal()) as server,
        httpx.Client(base_url=server.base_url, timeout=10) as http,
    ):
        server.wait_for(http, "/health/ready", 200)
        minted = runtime.run([*cli, "token", "mint", "ann", "--ttl", "600"], env)
        assert minted.returncode == 0, describe(minted)
        as_ann = {"Authorization": f"Bearer {minted.stdout.strip()}"}
        made = runtime.run([*cli, "keys", "create", "roles-test"], env)
        assert made.returncode == 0, describe(made)
        as_bot = {"Authorization": f"Bearer {json.loads(made.stdout)['key']}"}

        created = http.post("/chats/", json={"title": "as the app"}, headers=as_ann)
        assert created.status_code == 201, f"{created.text}\n{server.output()}"
        chat = f"/chats/{created.json()['id']}"
        for headers in (as_ann, as_bot):
            posted = http.post(f"{chat}/messages/", json={"text": "hi"}, headers=headers)
            assert posted.status_code == 201, f"{posted.text}\n{server.output()}"
        read = http.get(chat, headers=as_ann)
        assert [m["text"] for m in read.json()["messages"]] == ["hi", "hi"], read.text
        deleted = http.delete(chat, headers=as_ann)
        assert deleted.status_code == 204, f"{deleted.text}\n{server.output()}"
        server.stop()
        assert "Traceback" not in server.output(), server.output()
        assert "permission denied" not in server.output(), server.output()


# --- A volume made before the roles ----------------------------------------------------------


def test_the_script_run_by_hand_hands_a_superusers_tables_to_the_owner(
    bindir: Path,
    compose: Json,
    image: Image,
    env_file_contents: EnvFiles,
) -> None:
    """A db-data volume of the compose file before the roles: its superuser `chatapi` made
    the database and migrated it. The script, run by hand with POSTGRES_USER=chatapi, hands
    it all to the owner: migrate can migrate again, the api can read and write."""
    db = c.container_environment(c.service(compose, "db"), env_file_contents)
    made = Primary.create(bindir, {**db, "POSTGRES_USER": "chatapi"})
    try:
        made.start()
        made.create_database()
        superuser_url = URL.create(
            "postgresql+psycopg2",
            username="chatapi",
            password=db["POSTGRES_PASSWORD"],
            host="127.0.0.1",
            port=made.port,
            database=db["POSTGRES_DB"],
        ).render_as_string(hide_password=False)
        migrations.upgrade(superuser_url)
        result = made.run_script(ROLES_SCRIPT)
        assert result.returncode == 0, describe(result)
        relations = made.sql(RELATIONS, db["POSTGRES_DB"]).splitlines()
        assert relations, "nothing migrated"
        for line in relations:
            assert line.endswith(f"|{db['CHATAPI_OWNER_USER']}"), line
        # The owner may change what it now owns: down one revision and up again.
        migrate_env = service_env(image, compose, "migrate", env_file_contents, made.port)
        down = runtime.run(["alembic", "downgrade", "-1"], migrate_env)
        assert down.returncode == 0, describe(down)
        up = runtime.run(["python", "-m", "cli", "migrate"], migrate_env)  # `chatapi migrate`
        assert up.returncode == 0, describe(up)
        api = engine_of(service_env(image, compose, "api", env_file_contents, made.port))
        try:
            with api.begin() as connection:
                connection.execute(
                    text("INSERT INTO chats (title, created_at) VALUES ('kept', now())")
                )
        finally:
            api.dispose()
    finally:
        made.remove()


def test_the_script_refuses_a_role_without_a_password(
    database: Database,
) -> None:
    environment = {
        **database.primary.environment,
        "CHATAPI_OWNER_USER": "other_owner",
        "CHATAPI_APP_USER": "other_app",
        "CHATAPI_APP_PASSWORD": "",
    }
    made = database.primary
    primary = Primary(made.bindir, environment, made.root, made.run_as, made.port)
    result = primary.run_script(ROLES_SCRIPT)
    assert result.returncode != 0, describe(result)
    assert "CHATAPI_APP_PASSWORD" in result.stderr, describe(result)
    assert database.primary.sql("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'other_%'") == "0"
