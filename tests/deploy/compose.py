"""Reading docker-compose.yml: its short and long syntaxes brought to one shape each."""

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ruamel.yaml import YAML

Service = dict[str, Any]


def load(path: Path) -> dict[str, Any]:
    document = YAML(typ="safe", pure=True).load(path.read_text())
    assert isinstance(document, dict), f"{path} is not a mapping"
    return document


# Compose's interpolation: `$$`, `${NAME}`, `${NAME<op>word}` (op one of :- - :? ? :+ +), `$NAME`.
_INTERPOLATED = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<word>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: Any, variables: Mapping[str, str]) -> Any:
    """`value` (a document or any part of one) with its strings interpolated as Compose does
    it with `variables` (its shell's environment and .env file), before anything else. Keys
    are left as they are; a default that itself holds a `$` is not supported (fails)."""
    if isinstance(value, dict):
        return {key: interpolate(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, variables) for item in value]
    if not isinstance(value, str):
        return value
    return _INTERPOLATED.sub(lambda match: _substitute(match, variables), value)


def _substitute(match: re.Match[str], variables: Mapping[str, str]) -> str:
    if match["escaped"]:
        return "$"
    name = match["braced"] or match["named"]
    given = variables.get(name)
    op, word = match["op"], match["word"] or ""
    assert "$" not in word, f"nested interpolation is not read here: {match[0]}"
    if op is None:
        return given or ""
    unset = given is None or (op.startswith(":") and given == "")
    if op.endswith("-"):
        return word if unset else str(given)
    if op.endswith("?"):
        assert not unset, f"Compose would refuse to start: {name} is required ({word})"
        return str(given)
    return "" if unset else word  # `+`: the word when set


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
    """{published host port: container port}, whatever the address (`port_bindings`)."""
    return {binding.published: binding.target for binding in port_bindings(service)}


# [host_ip:][published:]target, an IPv6 host_ip in brackets.
_PORT = re.compile(
    r"(?:(?:\[(?P<ipv6>[^]]+)\]|(?P<ip>[^:]+)):)??(?:(?P<host>\d+):)?(?P<target>\d+)"
)


class PortBinding(NamedTuple):
    host_ip: str | None  # None: every address of the host
    published: int
    target: int


def port_bindings(service: Service) -> list[PortBinding]:
    """The service's published ports, from `[host_ip:][published:]target[/protocol]` (an IPv6
    address in brackets) or the long syntax; a port not published (target alone) is left out."""
    bindings: list[PortBinding] = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            if entry.get("published") is not None:
                host_ip = entry.get("host_ip")
                bindings.append(
                    PortBinding(host_ip or None, int(entry["published"]), int(entry["target"]))
                )
            continue
        spec = str(entry).split("/")[0]
        match = _PORT.fullmatch(spec)
        assert match is not None, f"not a port mapping understood here: {entry!r}"
        if match["host"] is None:
            continue
        host_ip = match["ipv6"] or match["ip"]
        bindings.append(PortBinding(host_ip, int(match["host"]), int(match["target"])))
    return bindings


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
