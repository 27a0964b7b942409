"""docker-compose.yml: valid by the Compose specification, and the start-up order it promises.

db is up and healthy -> migrate applies the migrations and exits 0 -> api starts -> once it
is healthy, proxy (nginx, deploy/nginx.conf) starts in front of it, the one published port.
"""

import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from cli.serve import is_loopback
from infrastructure.settings import Settings
from tests.deploy import compose as c
from tests.deploy import dockerignore, nginx_conf
from tests.deploy.conftest import EnvFiles, example_env_file, interpolated, raw
from tests.deploy.image import COMPOSE_FILE, DOCKERIGNORE, REPLICA_COMPOSE_FILE, REPO, Image

CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
POSTGRES_DATA = "/var/lib/postgresql/data"  # where the postgres:15 image keeps its cluster
NGINX_IN_IMAGE = "/etc/nginx/nginx.conf"  # the main configuration file of the nginx image
SECRETS_FILE = "deploy/chatapi.env"  # the api's secrets: made by whoever deploys, not in git
MIGRATE_FILE = "deploy/migrate.env"  # migrate's, over the api's: the schema owner's password
POSTGRES_FILE = "deploy/postgres.env"  # db's (and db-replica's): the database's passwords
LOOPBACK = {"127.0.0.1", "::1"}
PUBLISH_VARIABLE = "CHATAPI_PUBLISH"
GITIGNORE = REPO / ".gitignore"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_compose_file_is_valid_by_the_compose_specification() -> None:
    result = validate(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_rejects_an_invalid_compose_file(tmp_path: Path) -> None:
    """The check above can fail: a condition Compose does not know is refused."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        "services:\n"
        "  api:\n"
        "    image: chatapi\n"
        "    depends_on:\n"
        "      migrate:\n"
        "        condition: service_finished\n"
    )
    result = validate(broken)
    assert result.returncode != 0, result.stdout + result.stderr


def test_db_is_postgres_15_keeping_its_data_in_a_named_volume(compose: dict[str, Any]) -> None:
    db = c.service(compose, "db")
    assert db.get("image") == "postgres:15"
    mounts = c.volume_mounts(db)
    assert POSTGRES_DATA in mounts, mounts
    volume = mounts[POSTGRES_DATA]
    assert volume, mounts
    assert not volume.startswith(("/", ".", "~")), f"{volume} is a bind mount, not a volume"
    declared = compose.get("volumes") or {}
    assert volume in declared, f"volume {volume!r} is not declared under top-level volumes"


def test_db_is_healthy_when_pg_isready_says_so(compose: dict[str, Any]) -> None:
    argv = c.healthcheck_argv(c.service(compose, "db"))
    assert "pg_isready" in " ".join(argv).split(), argv


def test_migrate_upgrades_to_head_once_db_is_healthy(compose: dict[str, Any]) -> None:
    migrate = c.service(compose, "migrate")
    assert c.command(migrate) == ["alembic", "upgrade", "head"]
    assert c.depends_on(migrate).get("db") == "service_healthy"


def test_api_starts_only_after_the_migration_succeeded(compose: dict[str, Any]) -> None:
    api = c.service(compose, "api")
    assert c.depends_on(api).get("migrate") == "service_completed_successfully"


def test_the_proxy_publishes_8000_on_loopback_to_the_port_nginx_listens_on(
    compose: dict[str, Any],
) -> None:
    bindings = c.port_bindings(c.service(compose, "proxy"))
    assert bindings == [c.PortBinding("127.0.0.1", 8000, 80)], bindings
    assert nginx_conf.values("listen", nginx_conf.block("server")) == ["80"]


@pytest.mark.parametrize("path", [COMPOSE_FILE, REPLICA_COMPOSE_FILE], ids=lambda p: p.name)
def test_every_published_port_is_on_loopback_unless_a_variable_says_otherwise(
    path: Path,
) -> None:
    """Plain HTTP, where Bearer credentials travel in clear, reaches no other machine unless
    whoever deploys asks for it (having put TLS in front: README, "Behind a proxy")."""
    for name, service in interpolated(path)["services"].items():
        for binding in c.port_bindings(service):
            assert binding.host_ip in LOOPBACK, (name, binding)


@pytest.mark.parametrize(
    ("published", "expected"),
    [
        ("0.0.0.0:8000", c.PortBinding("0.0.0.0", 8000, 80)),
        ("192.0.2.7:8443", c.PortBinding("192.0.2.7", 8443, 80)),
        ("[::1]:9000", c.PortBinding("::1", 9000, 80)),
    ],
)
def test_the_proxys_address_and_port_are_chosen_with_a_variable(
    published: str, expected: c.PortBinding
) -> None:
    compose = interpolated(COMPOSE_FILE, {PUBLISH_VARIABLE: published})
    assert c.port_bindings(c.service(compose, "proxy")) == [expected]


def test_the_readme_says_how_to_publish_elsewhere_and_to_put_tls_in_front() -> None:
    readme = (REPO / "README.md").read_text()
    assert PUBLISH_VARIABLE in readme
    assert PUBLISH_VARIABLE in COMPOSE_FILE.read_text().split("\nname:")[0]  # its header
    assert "ssl_certificate" in readme  # the example of TLS in front


def test_the_api_is_reached_only_through_the_proxy(compose: dict[str, Any], image: Image) -> None:
    api = c.service(compose, "api")
    assert not api.get("ports"), api["ports"]
    environment = {**image.environment(), **c.environment(api)}
    # Reached from the proxy's container: not bound to its own loopback.
    assert environment["HOST"] == "0.0.0.0", environment["HOST"]


def test_the_proxys_upstream_is_the_api_on_the_port_it_serves_on(
    compose: dict[str, Any], image: Image
) -> None:
    servers = nginx_conf.values("server", nginx_conf.block("upstream chatapi"))
    assert len(servers) == 1, servers
    host, _, port = servers[0].partition(":")
    environment = {**image.environment(), **c.environment(c.service(compose, host))}
    assert int(port) == int(environment["PORT"]), (servers, environment["PORT"])


def test_the_proxy_is_the_official_nginx_image_at_a_pinned_version(
    compose: dict[str, Any],
) -> None:
    image = c.service(compose, "proxy").get("image", "")
    assert re.fullmatch(r"nginx:\d+\.\d+(\.\d+)?(-alpine)?", image), image


def test_the_proxy_runs_deploy_nginx_conf_read_only(compose: dict[str, Any]) -> None:
    proxy = c.service(compose, "proxy")
    source = c.volume_mounts(proxy).get(NGINX_IN_IMAGE)
    assert source is not None, proxy.get("volumes")
    assert (COMPOSE_FILE.parent / source).resolve() == nginx_conf.NGINX_CONF
    assert f"{source}:{NGINX_IN_IMAGE}:ro" in proxy["volumes"], proxy["volumes"]


def test_the_proxy_starts_once_the_api_is_healthy_and_restarts_with_it(
    compose: dict[str, Any],
) -> None:
    """nginx resolves `api` once, at start: a recreated api must restart it."""
    proxy = c.service(compose, "proxy")
    assert c.depends_on(proxy).get("api") == "service_healthy"
    assert proxy["depends_on"]["api"].get("restart") is True, proxy["depends_on"]


def test_the_api_believes_forwarded_headers_only_from_the_proxy(
    compose: dict[str, Any],
) -> None:
    """`*` (whoever connects) is the proxy only while the api publishes no port."""
    api = c.service(compose, "api")
    trusted = c.environment(api)["FORWARDED_ALLOW_IPS"]
    assert Settings(forwarded_allow_ips=trusted).forwarded_allow_ips == trusted
    if trusted == "*":
        assert not api.get("ports"), api["ports"]


def test_api_has_a_healthcheck(compose: dict[str, Any]) -> None:
    api = c.service(compose, "api")
    assert not (api.get("healthcheck") or {}).get("disable"), api["healthcheck"]
    assert c.healthcheck_argv(api)  # what it runs is run by tests/deploy/test_startup.py


def built_from(service: c.Service) -> Path | None:
    """The Dockerfile a service builds its image from; None if it builds none."""
    build = service.get("build")
    if build is None:
        return None
    context = build.get("context", ".") if isinstance(build, dict) else build
    dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
    return (REPO / str(context) / str(dockerfile)).resolve()


def test_no_two_services_build_the_same_image(compose: dict[str, Any]) -> None:
    """Compose v2 builds services in parallel: two builds of one tag can fail with "image
    already exists" (docker/buildx#3576), and two of one Dockerfile build it twice."""
    builders = {name: s for name, s in compose["services"].items() if "build" in s}
    tags = [s["image"] for s in builders.values() if "image" in s]
    assert len(tags) == len(set(tags)), builders
    dockerfiles = [built_from(s) for s in builders.values()]
    assert len(dockerfiles) == len(set(dockerfiles)), builders


def test_migrate_builds_the_image_from_this_dockerfile(compose: dict[str, Any]) -> None:
    migrate = c.service(compose, "migrate")
    assert built_from(migrate) == (REPO / "Dockerfile").resolve(), migrate
    assert migrate.get("image"), "the image needs a name for api to run it by"


def test_api_runs_the_image_migrate_built_without_pulling_it(compose: dict[str, Any]) -> None:
    api = c.service(compose, "api")
    assert "build" not in api, api
    assert api.get("image") == c.service(compose, "migrate")["image"]
    # The image is local only: a pull would fail, or fetch someone else's image of that name.
    assert api.get("pull_policy") == "never", api
    assert "migrate" in c.depends_on(api)  # so it exists before api is created


def database_roles(compose: dict[str, Any]) -> dict[str, str]:
    """{what: role name} of db: its superuser, the owner of the schema, the api's."""
    db = c.environment(c.service(compose, "db"))
    return {
        "superuser": db.get("POSTGRES_USER", "postgres"),
        "owner": db["CHATAPI_OWNER_USER"],
        "app": db["CHATAPI_APP_USER"],
    }


@pytest.mark.parametrize(("name", "role"), [("migrate", "owner"), ("api", "app")])
def test_migrate_and_api_reach_db_as_their_own_roles(
    compose: dict[str, Any], env_file_contents: EnvFiles, name: str, role: str
) -> None:
    """migrate as the role owning the schema, the api as the one that only reads and writes
    rows; each with the password db gave that role (its env files', as PGPASSWORD: none is
    in a URL)."""
    db = c.service(compose, "db")
    service = c.service(compose, name)
    url = make_url(c.environment(service)["DATABASE_URL"])
    assert url.host == "db"
    assert url.port in (None, 5432)
    assert url.username == database_roles(compose)[role]
    assert url.password is None, "a password written in the compose file"
    assert url.database == c.environment(db)["POSTGRES_DB"]
    password_of_role = c.container_environment(db, env_file_contents)[
        f"CHATAPI_{role.upper()}_PASSWORD"
    ]
    assert c.container_environment(service, env_file_contents)["PGPASSWORD"] == password_of_role
    Settings(database_url=url.render_as_string(hide_password=False))  # the service accepts it


def test_the_api_serves_as_neither_the_superuser_nor_the_owner_of_the_schema(
    compose: dict[str, Any],
) -> None:
    roles = database_roles(compose)
    assert len(set(roles.values())) == 3, roles
    api_user = make_url(c.environment(c.service(compose, "api"))["DATABASE_URL"]).username
    assert api_user not in (roles["superuser"], roles["owner"]), api_user
    migrate_user = make_url(c.environment(c.service(compose, "migrate"))["DATABASE_URL"]).username
    assert migrate_user != roles["superuser"], migrate_user


def test_db_makes_the_roles_when_its_volume_is_created(compose: dict[str, Any]) -> None:
    """The image runs /docker-entrypoint-initdb.d/*.sh at its first start (what the script
    does is run by tests/deploy/test_database_roles.py)."""
    db = c.service(compose, "db")
    source = c.volume_mounts(db).get("/docker-entrypoint-initdb.d/roles.sh")
    assert source is not None, db.get("volumes")
    assert (REPO / source).resolve() == REPO / "deploy" / "primary-roles.sh"
    assert f"{source}:/docker-entrypoint-initdb.d/roles.sh:ro" in db["volumes"]


def test_db_is_healthy_only_once_its_first_start_scripts_have_run(compose: dict[str, Any]) -> None:
    """While the image runs them its server listens on no TCP address: pg_isready over TCP
    fails until the roles exist, so migrate never starts before them."""
    argv = " ".join(c.healthcheck_argv(c.service(compose, "db"))).split()
    assert argv[argv.index("-h") + 1] == "127.0.0.1", argv


# --- No secret in the compose files ------------------------------------------------------------

# The name of a variable that holds a secret (a *_FILE variant names a file: allowed).
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|PEPPER|TOKEN|API_KEY|PGPASS", re.IGNORECASE)
# A URL with a password in it: scheme://user:password@
URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]*:[^/@\s]*@")


def strings(value: Any) -> list[str]:
    """Every string of a document, keys included."""
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in [str(key), *strings(item)]]
    if isinstance(value, list):
        return [text for item in value for text in strings(item)]
    return [value] if isinstance(value, str) else []


def test_the_checks_below_find_what_they_look_for() -> None:
    assert URL_WITH_PASSWORD.search("postgresql+psycopg2://chatapi:chatapi@db:5432/chatapi")
    assert URL_WITH_PASSWORD.search("postgres://:pw@db/x")
    assert not URL_WITH_PASSWORD.search("postgresql+psycopg2://chatapi_app@db:5432/chatapi")
    for name in ("POSTGRES_PASSWORD", "REPLICATION_PASSWORD", "AUTH_JWT_SECRET", "PGPASSWORD"):
        assert SECRET_NAME.search(name), name
    for name in ("POSTGRES_USER", "REPLICATION_USER", "AUTH_MODE", "DATABASE_URL"):
        assert not SECRET_NAME.search(name), name


@pytest.mark.parametrize("path", [COMPOSE_FILE, REPLICA_COMPOSE_FILE], ids=lambda p: p.name)
def test_no_password_or_secret_is_written_in_a_compose_file(path: Path) -> None:
    """Every one comes from the env files of deploy/ (or from Compose secrets' files)."""
    document = raw(path)
    for name, service in document["services"].items():
        for variable, value in c.environment(service).items():
            if SECRET_NAME.search(variable) and not variable.endswith("_FILE"):
                pytest.fail(f"{path.name}: {name} sets {variable} (to {value!r})")
        assert c.environment(service).get("POSTGRES_HOST_AUTH_METHOD") != "trust", name
    for secret in (document.get("secrets") or {}).values():
        assert set(secret) <= {"file", "external", "name"}, secret  # no `content:`, no value
    for text in strings(document):
        assert not URL_WITH_PASSWORD.search(text), f"{path.name}: a password in {text!r}"


def test_each_service_gets_no_password_but_its_own(
    replica_compose: dict[str, Any], env_file_contents: EnvFiles
) -> None:
    """The api holds its role's password and no other: not the owner's, the superuser's nor
    the replication role's. A flaw in it cannot change the schema or take the database."""
    every_password = {
        value
        for variables in env_file_contents.values()
        for name, value in variables.items()
        if SECRET_NAME.search(name)
    }
    db = c.container_environment(c.service(replica_compose, "db"), env_file_contents)
    owners = {db["POSTGRES_PASSWORD"], db["CHATAPI_OWNER_PASSWORD"], db["REPLICATION_PASSWORD"]}
    api = c.container_environment(c.service(replica_compose, "api"), env_file_contents)
    held = set(api.values()) & every_password
    assert db["CHATAPI_APP_PASSWORD"] in held
    assert not held & owners, "the api holds a password that is not its role's"
    migrate = c.container_environment(c.service(replica_compose, "migrate"), env_file_contents)
    assert db["POSTGRES_PASSWORD"] not in migrate.values()
    assert db["REPLICATION_PASSWORD"] not in migrate.values()


# --- Identity and access ---------------------------------------------------------------------


def settings_of(environment: Mapping[str, str]) -> Settings:
    """The Settings a process with `environment` builds (only the variables it reads)."""
    fields: dict[str, Any] = {name.lower(): value for name, value in environment.items()}
    return Settings(**{name: fields[name] for name in fields.keys() & Settings.model_fields})


def git_ignores(path: str) -> bool:
    """Whether .gitignore keeps `path` out of git. Enough of git's rules for that file: a
    pattern with a slash is anchored at the root, one without matches at any depth, `*`
    stays within a segment, `!` re-includes, the last match wins."""
    lines = []
    for line in GITIGNORE.read_text().splitlines():
        pattern = line.strip()
        if pattern and not pattern.startswith("#"):
            negated, pattern = pattern.startswith("!"), pattern.removeprefix("!")
            if "/" not in pattern.rstrip("/"):
                pattern = "**/" + pattern
            lines.append(("!" if negated else "") + pattern)
    return dockerignore.ignored(path, dockerignore.rules("\n".join(lines)))


def test_the_git_ignore_reader() -> None:
    assert git_ignores(".venv/bin/python")
    assert git_ignores("api/__pycache__/app.cpython-311.pyc")
    assert not git_ignores("api/app.py")


def test_the_api_and_migrate_read_the_secrets_file(compose: dict[str, Any]) -> None:
    """Both build Settings (alembic's env.py too), from the same file; migrate's own comes
    after it, and its PGPASSWORD (the owner's) replaces the api's."""
    assert c.env_files(c.service(compose, "api")) == [SECRETS_FILE]
    assert c.env_files(c.service(compose, "migrate")) == [SECRETS_FILE, MIGRATE_FILE]


def test_db_and_its_standby_read_the_databases_env_file(replica_compose: dict[str, Any]) -> None:
    for name in ("db", "db-replica"):
        assert c.env_files(c.service(replica_compose, name)) == [POSTGRES_FILE], name


def test_the_env_files_stay_out_of_git_and_of_the_image(replica_compose: dict[str, Any]) -> None:
    paths = {
        path for service in replica_compose["services"].values() for path in c.env_files(service)
    }
    assert paths == {SECRETS_FILE, MIGRATE_FILE, POSTGRES_FILE}, paths
    for path in paths:
        assert git_ignores(path), path
        assert dockerignore.ignored(path, dockerignore.rules(DOCKERIGNORE.read_text())), path
    example = SECRETS_FILE + ".example"
    assert not git_ignores(example)  # committed, for whoever deploys to start from
    assert (REPO / example).is_file()


def test_the_example_names_settings_and_its_placeholders_are_refused() -> None:
    """Copied as it is, the example never serves with a secret everyone can read."""
    example = example_env_file(SECRETS_FILE)
    assert {"AUTH_JWT_SECRET", "AUTH_KEY_PEPPER", "PGPASSWORD"} <= set(example), example
    example.pop("PGPASSWORD")  # libpq's, not a setting: refused by db unless it is the role's
    for name, placeholder in example.items():
        assert name.lower() in Settings.model_fields, name
        given: dict[str, Any] = {name.lower(): placeholder}
        with pytest.raises(ValidationError, match=name):
            Settings(auth_mode="required", **given)


def test_the_api_serves_with_credentials_required(
    compose: dict[str, Any], image: Image, env_file_contents: dict[str, dict[str, str]]
) -> None:
    """The image listens on 0.0.0.0, where `serve` refuses AUTH_MODE=none; the api needs
    every caller's credentials, with the secrets of its env file."""
    api = c.service(compose, "api")
    environment = {**image.environment(), **c.container_environment(api, env_file_contents)}
    settings = settings_of(environment)
    assert not is_loopback(settings.host), settings.host
    assert settings.auth_mode == "required"
    assert not settings.allow_unauthenticated
    secrets = env_file_contents[SECRETS_FILE]
    assert settings.auth_jwt_secret is not None
    assert settings.auth_jwt_secret.get_secret_value() == secrets["AUTH_JWT_SECRET"]
    assert settings.key_pepper == secrets["AUTH_KEY_PEPPER"].encode()
