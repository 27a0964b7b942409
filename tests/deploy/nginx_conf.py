"""Reading deploy/nginx.conf: a directive's value, a block's text, sizes and times."""

import re

from tests.deploy.image import REPO

NGINX_CONF = REPO / "deploy" / "nginx.conf"
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024 * 1024}
TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def text() -> str:
    return NGINX_CONF.read_text()


def without_comments(config: str) -> str:
    return re.sub(r"#[^\n]*", "", config)


def values(name: str, config: str | None = None) -> list[str]:
    """Every value of the directive `name` (which may include its first words:
    `limit_req zone=chatapi_writes`), in the order written."""
    pattern = rf"^\s*{re.escape(name)}(?:\s+([^;]*))?;"
    found = re.findall(pattern, without_comments(config or text()), re.MULTILINE)
    return [value.strip() for value in found]


def directive(name: str, config: str | None = None) -> str:
    """The value of a directive written once."""
    found = values(name, config)
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def block(header: str, config: str | None = None) -> str:
    """The inside of the block that opens with `header {` (`upstream chatapi`)."""
    config = without_comments(config or text())
    start = config.index(header + " {") + len(header) + 2
    depth = 1
    for end in range(start, len(config)):
        depth += {"{": 1, "}": -1}.get(config[end], 0)
        if depth == 0:
            return config[start:end]
    raise AssertionError(f"block {header!r} is not closed")


def own(inside: str) -> str:
    """A block's inside without the blocks nested in it: the directives at its own level."""
    while re.search(r"\{[^{}]*\}", inside):
        inside = re.sub(r"[^;{}]*\{[^{}]*\}", "", inside)
    return inside


def size(value: str) -> int:
    """An nginx size (`64k`) in bytes."""
    return int(_measure(value, SIZE_UNITS))


def seconds(value: str) -> float:
    """An nginx time (`10s`, `1m`) in seconds."""
    return _measure(value, TIME_UNITS)


def _measure(value: str, units: dict[str, int]) -> float:
    match = re.fullmatch(r"(\d+)([a-z]?)", value.lower())
    assert match is not None, f"not understood: {value!r}"
    assert match[2] in units, f"unit not understood: {value!r}"
    return int(match[1]) * units[match[2]]
