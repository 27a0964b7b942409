"""The machine a run was measured on, as far as it matters for the numbers."""

import importlib.metadata
import importlib.util
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from bench import wrk

SERVICE_DIRS = ("api", "commands", "queries", "domain", "infrastructure", "alembic")
PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "sqlalchemy",
    "sqlmodel",
    "psycopg2-binary",
)


def _cpuinfo(key: str) -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return "unknown"


def _meminfo_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def describe(wrk_binary: str) -> dict[str, Any]:
    # uvicorn's "auto" picks uvloop and httptools whenever they can be imported.
    has = {name: importlib.util.find_spec(name) is not None for name in ("uvloop", "httptools")}
    return {
        "cpu_model": _cpuinfo("model name"),
        "cpu_mhz": _cpuinfo("cpu MHz"),
        "cores": os.cpu_count(),
        "memory_gib": round(_meminfo_gib(), 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "wrk": wrk.version(wrk_binary),
        "event_loop": "uvloop" if has["uvloop"] else "asyncio",
        "http": "httptools" if has["httptools"] else "h11",
    }


def code_version(root: Path) -> dict[str, Any]:
    """The commit measured, and the service files that differed from it (work in progress)."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", *SERVICE_DIRS).splitlines()
    return {
        "commit": git("rev-parse", "--short=12", "HEAD") or "unknown",
        "subject": git("log", "-1", "--format=%s").split(". ")[0][:120],
        "uncommitted": [line[3:] for line in changed],
    }
