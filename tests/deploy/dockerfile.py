"""A small Dockerfile reader: enough of the format to check ours and to run its commands.

It knows instructions, line continuations, comments, stages, the exec (JSON) and shell forms,
ENV with `$VAR` substitution, COPY and HEALTHCHECK. Heredocs and `# escape=` it does not.
"""

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case, as Docker treats keywords case-insensitively
    arguments: str
    line: int  # where the instruction starts, 1-based

    def __str__(self) -> str:
        return f"line {self.line}: {self.keyword} {self.arguments}"


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    destination: str
    from_stage: str | None  # --from=...; None for the build context


@dataclass(frozen=True)
class Healthcheck:
    options: dict[str, str]  # --interval=10s -> {"interval": "10s"}
    command: str  # what follows CMD, in exec or shell form


def instructions(text: str) -> list[Instruction]:
    """The instructions, with continuation lines joined and comment lines dropped."""
    result: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # a comment line, even inside a continued instruction, is not part of it
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped.removesuffix("\\").strip() if continued else stripped)
        if not continued:
            result.append(_instruction(" ".join(p for p in pending if p), start))
            pending = []
    if pending:
        result.append(_instruction(" ".join(p for p in pending if p), start))
    return result


def _instruction(joined: str, line: int) -> Instruction:
    keyword, _, arguments = joined.partition(" ")
    return Instruction(keyword.upper(), arguments.strip(), line)


def stages(text: str) -> list[Stage]:
    """Every build stage, in order; instructions before the first FROM (ARG) are dropped."""
    result: list[Stage] = []
    current: list[Instruction] | None = None
    base, name = "", None
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            if current is not None:
                result.append(Stage(base, name, tuple(current)))
            base, name = _from(instruction.arguments)
            current = []
        elif current is not None:
            current.append(instruction)
    if current is not None:
        result.append(Stage(base, name, tuple(current)))
    return result


def _from(arguments: str) -> tuple[str, str | None]:
    words = [w for w in arguments.split() if not w.startswith("--")]  # --platform=...
    if len(words) == 3 and words[1].lower() == "as":
        return words[0], words[2]
    assert len(words) == 1, f"cannot read FROM {arguments}"
    return words[0], None


def parse(path: Path) -> list[Stage]:
    return stages(path.read_text())


def exec_form(arguments: str) -> list[str] | None:
    """The argv of an exec-form (JSON array) CMD/ENTRYPOINT/RUN; None for the shell form."""
    if not arguments.startswith("["):
        return None
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return None  # Docker runs a malformed JSON array as a shell command
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return value


def env_assignments(arguments: str) -> list[tuple[str, str]]:
    """`ENV A=1 B="two words"` (or the legacy `ENV A 1`) as [(name, raw value), ...]."""
    words = shlex.split(arguments, posix=True)
    if words and "=" not in words[0]:
        name, _, value = arguments.partition(" ")
        return [(name, value.strip())]
    pairs = []
    for word in words:
        name, sep, value = word.partition("=")
        assert sep, f"cannot read ENV {arguments}"
        pairs.append((name, value))
    return pairs


_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def substitute(value: str, environment: Mapping[str, str]) -> str:
    """Docker's `$VAR`/`${VAR}` substitution; an unset variable becomes empty."""
    return _VARIABLE.sub(lambda m: environment.get(m.group(1) or m.group(2), ""), value)


def apply_env(stage: Stage, base: Mapping[str, str]) -> dict[str, str]:
    """The environment the stage's image runs with, starting from its base image's."""
    environment = dict(base)
    for instruction in stage.all("ENV"):
        # Every value of one ENV is substituted with the environment from before it.
        before = dict(environment)
        for name, value in env_assignments(instruction.arguments):
            environment[name] = substitute(value, before)
    return environment


def _options(arguments: str) -> tuple[dict[str, str], str]:
    """Split leading `--name=value` flags from the rest of an instruction's arguments."""
    options: dict[str, str] = {}
    rest = arguments.strip()
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        name, _, value = option[2:].partition("=")
        options[name] = value
        rest = rest.lstrip()
    return options, rest


def copy(instruction: Instruction) -> Copy:
    """`COPY [--from=stage] [--chown=...] src... dest`, in shell or exec form."""
    assert instruction.keyword in {"COPY", "ADD"}, instruction
    options, rest = _options(instruction.arguments)
    words = exec_form(rest) or shlex.split(rest)
    assert len(words) >= 2, f"cannot read {instruction}"
    return Copy(tuple(words[:-1]), words[-1], options.get("from"))


def healthcheck(instruction: Instruction) -> Healthcheck:
    """`HEALTHCHECK [--option=value ...] CMD command` (HEALTHCHECK NONE is not a check)."""
    options, rest = _options(instruction.arguments)
    keyword, _, command = rest.partition(" ")
    assert keyword.upper() == "CMD", f"not a HEALTHCHECK with a command: {instruction}"
    return Healthcheck(options, command.strip())
