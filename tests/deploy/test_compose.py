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
from tests.deploy.conftest import example_env_file
from tests.deploy.image import COMPOSE_FILE, DOCKERIGNORE, REPO, Image

CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
POSTGRES_DATA = "/var/lib/postgresql/data"  # where the postgres:15 image keeps its cluster
NGINX_IN_IMAGE = "/etc/nginx/nginx.conf"  # the main configuration file of the nginx image
SECRETS_FILE = "deploy/chatapi.env"  # the api's secrets: made by whoever deploys, not in git
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


def test_the_proxy_publishes_8000_to_the_port_nginx_listens_on(compose: dict[str, Any]) -> None:
    ports = c.published_ports(c.service(compose, "proxy"))
    assert ports == {8000: 80}, ports
    assert nginx_conf.values("listen", nginx_conf.block("server")) == ["80"]


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


@pytest.mark.parametrize("name", ["migrate", "api"])
def test_migrate_and_api_reach_db_with_its_credentials(compose: dict[str, Any], name: str) -> None:
    db = c.environment(c.service(compose, "db"))
    url = make_url(c.environment(c.service(compose, name))["DATABASE_URL"])
    assert url.host == "db"
    assert url.port in (None, 5432)
    user = db.get("POSTGRES_USER", "postgres")
    assert url.username == user
    assert url.password == db.get("POSTGRES_PASSWORD")
    assert url.database == db.get("POSTGRES_DB", user)
    Settings(database_url=url.render_as_string(hide_password=False))  # the service accepts it


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


@pytest.mark.parametrize("name", ["migrate", "api"])
def test_the_api_and_migrate_read_the_secrets_file(compose: dict[str, Any], name: str) -> None:
    """Both build Settings (alembic's env.py too), from the same file."""
    assert c.env_files(c.service(compose, name)) == [SECRETS_FILE]


def test_the_secrets_file_stays_out_of_git_and_of_the_image() -> None:
    assert git_ignores(SECRETS_FILE)
    assert dockerignore.ignored(SECRETS_FILE, dockerignore.rules(DOCKERIGNORE.read_text()))
    example = SECRETS_FILE + ".example"
    assert not git_ignores(example)  # committed, for whoever deploys to start from
    assert (REPO / example).is_file()


def test_the_example_names_settings_and_its_placeholders_are_refused() -> None:
    """Copied as it is, the example never serves with a secret everyone can read."""
    example = example_env_file(SECRETS_FILE)
    assert {"AUTH_JWT_SECRET", "AUTH_KEY_PEPPER"} <= set(example), example
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


def test_the_secrets_are_not_written_in_the_compose_file(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        written = c.environment(service)
        for secret in ("AUTH_JWT_SECRET", "AUTH_KEY_PEPPER"):
            assert secret not in written, f"{name} sets {secret} in the compose file"
