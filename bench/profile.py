"""py-spy on the server while wrk drives one endpoint: a flame graph and the top frames."""

import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench import wrk
from bench.config import taskset
from bench.results import Profile, ProfileSummary
from bench.server import ROOT, Server

PY_SPY = Path(sys.executable).parent / "py-spy"
WARM_S = 2  # the load runs this long before py-spy starts sampling
PROFILE_S = 10  # each of the two recordings
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::\d+)?\)$")
# The packages a request runs through; cli/ (which only starts the server) is not one of them.
PROJECT_PACKAGES = ("api", "commands", "queries", "domain", "infrastructure")
RATE_HZ = 250


def _short(frame: str) -> str:
    """`function (file:line)` as `function (package/module.py)`, without the line."""
    match = FRAME.match(frame)
    if match is None:
        return frame
    file = match["file"]
    for marker in ("site-packages/", f"{ROOT}/", "lib/python3."):
        if marker in file:
            file = file.split(marker, 1)[1]
            if marker == "lib/python3.":
                file = "stdlib/" + file.split("/", 1)[-1]
            break
    return f"{match['function']} ({file})"


def _package(frame: str) -> str:
    """The package a shortened frame belongs to: `uvicorn`, `sqlalchemy`, `asyncio`, `api`..."""
    match = FRAME.match(frame)
    file = match["file"] if match else frame
    if file.startswith("stdlib/"):
        file = file.removeprefix("stdlib/")
    return file.split("/", 1)[0].removesuffix(".py")


def summarise(raw: str, top: int = 12) -> ProfileSummary:
    """The frames most often running, the same by package, and this project's frames."""
    running: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    project: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";")]
        samples += count
        running[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for frame in set(frames):
            if _package(frame) in PROJECT_PACKAGES:
                project[frame] += count

    def share(counter: Counter[str], n: int = top) -> list[tuple[str, float]]:
        total = max(samples, 1)
        return [(frame, 100 * c / total) for frame, c in counter.most_common(n)]

    return ProfileSummary(samples, share(running), share(packages, 10), share(project, 8))


def _py_spy(pid: int, seconds: int, output: Path, cpus: str | None, *options: str) -> bool:
    command = [str(PY_SPY), "record", "--pid", str(pid), "--duration", str(seconds)]
    command += ["--rate", str(RATE_HZ)]
    for _ in range(2):  # py-spy now and then fails to attach on its first try
        out = subprocess.run(
            taskset(cpus, [*command, *options, "-o", str(output)]), capture_output=True, text=True
        )
        if out.returncode == 0:
            return True
        time.sleep(0.5)
    print(f"bench: py-spy failed: {out.stderr.strip()[-500:]}", flush=True)
    return False


def record(
    name: str,
    label: str,
    server: Server,
    setup: wrk.WrkSetup,
    script: str,
    args: list[str],
    docs: Path,
) -> Profile | None:
    """docs/profile-<name>.svg while wrk drives one endpoint, and the top frames."""
    load = wrk.Background(setup, server.url, script, args, limit_s=2 * PROFILE_S + 4 * WARM_S)
    return record_under(name, label, server, setup.cpus, docs, lambda: load.stop().rps, load.kill)


def record_under(
    name: str,
    label: str,
    server: Server,
    cpus: str | None,
    docs: Path,
    stop_load: Callable[[], float],
    kill_load: Callable[[], None],
) -> Profile | None:
    """docs/profile-<name>.svg, and the top frames of a raw recording just before it, taken
    while a load started by the caller runs; `stop_load` ends it and says its requests/s."""
    svg = docs / f"profile-{name}.svg"
    try:
        time.sleep(WARM_S)
        with tempfile.TemporaryDirectory() as scratch:
            raw_file = Path(scratch) / "raw.txt"
            ok = _py_spy(server.pid, PROFILE_S, raw_file, cpus, "--gil", "--format", "raw")
            raw = raw_file.read_text() if ok else ""
        ok = ok and _py_spy(server.pid, PROFILE_S, svg, cpus, "--gil")
        rate = stop_load()
    except BaseException:
        kill_load()
        raise
    if not ok:
        return None
    return Profile(name, label, svg.name, rate, summarise(raw))
