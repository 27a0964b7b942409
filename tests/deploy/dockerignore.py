"""Which build-context paths a .dockerignore keeps out of `docker build`.

Docker's rules, as far as this project needs them: one pattern a line, `#` comments, `*` and
`?` within one path segment, `**` across segments, `!` re-includes, the last matching line
wins, and a pattern that matches a directory matches everything in it. No `[ranges]`.
"""

import posixpath
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    pattern: str
    regex: re.Pattern[str]
    include: bool  # a `!pattern` line


def rules(text: str) -> list[Rule]:
    found: list[Rule] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = posixpath.normpath(line.removeprefix("!").strip()).lstrip("/")
        found.append(Rule(pattern, re.compile(_regex(pattern)), include))
    return found


def _regex(pattern: str) -> str:
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return "".join(parts)


def ignored(path: str, rules: list[Rule]) -> bool:
    """Whether `path` (relative to the context, with `/`) is left out of the build context."""
    segments = posixpath.normpath(path).split("/")
    candidates = ["/".join(segments[:n]) for n in range(1, len(segments) + 1)]
    result = False
    for rule in rules:
        if any(rule.regex.fullmatch(candidate) for candidate in candidates):
            result = not rule.include
    return result
