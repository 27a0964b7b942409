"""Reading a `uv pip compile --generate-hashes` lock file."""

import re
from pathlib import Path

REQUIREMENT = re.compile(
    r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*(?P<version>[^\s;\\]+)"
)


def normalise(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str:
    return normalise(re.split(r"[=<>!~\[; ]", line.strip())[0])


def entries(path: Path) -> dict[str, list[str]]:
    """{normalised name: the lines of its entry (the requirement, then its --hash lines)}."""
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0].isspace():
            current.append(stripped)
        else:
            current = [stripped]
            found[requirement_name(stripped)] = current
    return found


def pins(path: Path) -> dict[str, str]:
    """{normalised name: pinned version} of every `name==version` entry."""
    found: dict[str, str] = {}
    for name, lines in entries(path).items():
        match = REQUIREMENT.match(lines[0])
        if match:
            found[name] = match["version"]
    return found
