"""Installs a missing Debian package: as root, or through `sudo -n` when not."""

import os
import shutil
import subprocess

from bench.config import BenchError


def _apt_get(*args: str) -> bool:
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run([*prefix, "apt-get", *args], env=env).returncode == 0


def ensure_command(command: str, package: str) -> str:
    """The path of `command`, installing `package` first when it is missing."""
    found = shutil.which(command)
    if found:
        return found
    print(f"bench: {command} is missing; installing the Debian package {package}", flush=True)
    # Try the package lists as they are; refresh them only when that fails.
    installed = _apt_get("install", "-y", "-q", package) or (
        _apt_get("update", "-q") and _apt_get("install", "-y", "-q", package)
    )
    if not installed:
        raise BenchError(f"could not install {package} with apt-get (root or sudo -n needed)")
    found = shutil.which(command)
    if not found:
        raise BenchError(f"{package} is installed but {command} is not on PATH")
    return found
