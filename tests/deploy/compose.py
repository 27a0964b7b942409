"""Reading docker-compose.yml: its short and long syntaxes brought to one shape each."""

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

Service = dict[str, Any]


def load(path: Path) -> dict[str, Any]:
    document = YAML(typ="safe", pure=True).load(path.read_text())
    assert isinstance(document, dict), f"{path} is not a mapping"
    return document


def service(compose: dict[str, Any], name: str) -> Service:
    services = compose.get("services") or {}
    assert name in services, f"no service {name!r} in {sorted(services)}"
    found = services[name]
    assert isinstance(found, dict), found
    return found


def depends_on(service: Service) -> dict[str, str]:
    """{service: condition}; the short (list) syntax means `service_started`."""
    given = service.get("depends_on") or {}
    if isinstance(given, list):
        return dict.fromkeys(given, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in given.items()}


def command(service: Service) -> list[str]:
    """The service's `command` as argv (a string is split as Compose splits it)."""
    given = service.get("command")
    assert given, f"the service has no command: {service}"
    return shlex.split(given) if isinstance(given, str) else [str(word) for word in given]


def healthcheck_argv(service: Service) -> list[str]:
    """The `healthcheck.test` as argv: CMD runs as is, CMD-SHELL and a string via /bin/sh."""
    test = (service.get("healthcheck") or {}).get("test")
    assert test, f"the service has no healthcheck test: {service}"
    if isinstance(test, str):
        return ["/bin/sh", "-c", test]
    kind, *rest = [str(word) for word in test]
    if kind == "CMD":
        return rest
    assert kind == "CMD-SHELL", f"not a healthcheck that runs anything: {test}"
    return ["/bin/sh", "-c", " ".join(rest)]


def environment(service: Service) -> dict[str, str]:
    """The service's `environment`, from either the mapping or the `NAME=value` list syntax."""
    given = service.get("environment") or {}
    if isinstance(given, list):
        return dict(str(item).partition("=")[::2] for item in given)
    return {str(name): "" if value is None else str(value) for name, value in given.items()}


def env_files(service: Service) -> list[str]:
    """The paths of the service's `env_file`s, in order (relative to the compose file's
    directory), from a string, a list of strings, or the long `{path, required}` form."""
    given = service.get("env_file") or []
    entries = [given] if isinstance(given, str) else list(given)
    return [str(entry["path"]) if isinstance(entry, dict) else str(entry) for entry in entries]


def read_env_file(text: str) -> dict[str, str]:
    """`NAME=value` lines as Compose reads an env file: blank lines and `#` comments skipped,
    one pair of matching quotes around a value removed."""
    variables: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.partition("=")
        assert equals, f"not NAME=value: {line!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        variables[name.strip()] = value
    return variables


def container_environment(
    service: Service, env_file_contents: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """What Compose sets in the service's container over the image's ENV: its env files'
    variables, in order (`env_file_contents` gives each path's), then its `environment`."""
    variables: dict[str, str] = {}
    for path in env_files(service):
        variables.update(env_file_contents[path])
    return {**variables, **environment(service)}


def published_ports(service: Service) -> dict[int, int]:
    """{published host port: container port}, from `[ip:]host:container[/proto]` or long syntax."""
    ports: dict[int, int] = {}
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            if entry.get("published") is not None:
                ports[int(entry["published"])] = int(entry["target"])
            continue
        *host, container = str(entry).split("/")[0].split(":")
        if host:
            ports[int(host[-1])] = int(container)
    return ports


def volume_mounts(service: Service) -> dict[str, str]:
    """{target path in the container: source} for each `source:target[:mode]` or long entry."""
    mounts: dict[str, str] = {}
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            mounts[str(entry["target"])] = str(entry.get("source", ""))
        else:
            source, _, rest = str(entry).partition(":")
            mounts[rest.split(":")[0]] = source
    return mounts


# Sequences that a later file replaces instead of adding to (Compose's merge rules).
_REPLACED = {"command", "entrypoint", "test"}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` over `base`, as `docker compose -f base -f override` merges them: mappings
    key by key, `environment` and `depends_on` in their long forms, `volumes` of a service by
    mount target; `command`, `entrypoint` and `healthcheck.test` replaced, other sequences
    appended; anything else replaced."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge_value(key, base[key], value) if key in base else value
    return merged


def _merge_value(key: str, base: Any, override: Any) -> Any:
    if key == "environment":
        return {**environment({key: base}), **environment({key: override})}
    if key == "depends_on":
        return merge(_long_depends_on(base), _long_depends_on(override))
    if isinstance(base, dict) and isinstance(override, dict):
        return merge(base, override)
    if key == "volumes" and isinstance(base, list) and isinstance(override, list):
        by_target = {_mount_target(entry): entry for entry in base}
        by_target.update({_mount_target(entry): entry for entry in override})
        return list(by_target.values())
    if isinstance(base, list) and isinstance(override, list) and key not in _REPLACED:
        return [*base, *(entry for entry in override if entry not in base)]
    return override


def _long_depends_on(given: Any) -> dict[str, Any]:
    if isinstance(given, list):
        return {name: {"condition": "service_started"} for name in given}
    return {name: dict(spec or {}) for name, spec in given.items()}


def _mount_target(entry: Any) -> str:
    return next(iter(volume_mounts({"volumes": [entry]})))
