"""The Dockerfile and .dockerignore: lint-clean, and an image that is small, locked, unprivileged
and checks its own health without extra tools. Running its commands is test_startup.py."""

import posixpath
import re
import shlex
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy import dockerfile, dockerignore, lock
from tests.deploy.dockerfile import Copy, Stage
from tests.deploy.image import DOCKERFILE, DOCKERIGNORE, REPO, VENV_IN_IMAGE, Image

HADOLINT = Path(sys.executable).parent / "hadolint"
SLIM_PYTHON = re.compile(r"python:[\w.-]*-slim(@sha256:[0-9a-f]{64})?")
LOCK = "requirements.lock"


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--no-color", "--failure-threshold", "warning", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def context_copies(stage: Stage) -> list[Copy]:
    """The stage's COPY/ADD instructions that take files from the build context."""
    found = [dockerfile.copy(i) for i in stage.instructions if i.keyword in {"COPY", "ADD"}]
    return [c for c in found if c.from_stage is None]


def all_context_sources(image: Image) -> list[str]:
    return [s for stage in image.stages for c in context_copies(stage) for s in c.sources]


def stage_named(image: Image, name: str) -> Stage:
    for number, stage in enumerate(image.stages):
        if name in {stage.name, str(number)}:
            return stage
    raise AssertionError(f"no build stage {name!r}")


# --- the reader itself -----------------------------------------------------------------------


def test_the_reader_joins_continued_lines_and_drops_comments() -> None:
    text = (
        "FROM python:3.11-slim AS build\n"
        "RUN a \\\n"
        "    # a comment inside the instruction\n"
        "    && b\n"
        "FROM python:3.11-slim\n"
        'ENV A=1 \\\n    B="two words" \\\n    C=$A:$PATH\n'
        'CMD ["python", "-m", "x"]\n'
    )
    build, final = dockerfile.stages(text)
    assert (build.base, build.name) == ("python:3.11-slim", "build")
    assert [(i.keyword, i.arguments) for i in build.instructions] == [("RUN", "a && b")]
    assert dockerfile.apply_env(final, {"PATH": "/bin", "A": "0"}) == {
        "PATH": "/bin",
        "A": "1",
        "B": "two words",
        "C": "0:/bin",  # values of one ENV see the environment from before it
    }
    cmd = final.last("CMD")
    assert cmd is not None
    assert dockerfile.exec_form(cmd.arguments) == ["python", "-m", "x"]
    assert dockerfile.exec_form("python -m x") is None


def test_the_dockerignore_reader() -> None:
    rules = dockerignore.rules("# comment\n.git\n**/__pycache__\n*.db\n!keep.db\n")
    assert dockerignore.ignored(".git/config", rules)
    assert dockerignore.ignored("api/__pycache__/app.pyc", rules)
    assert dockerignore.ignored("chatapi.db", rules)
    assert not dockerignore.ignored("keep.db", rules)
    assert not dockerignore.ignored("api/app.py", rules)
    assert not dockerignore.ignored(".github", rules)


# --- lint --------------------------------------------------------------------------------------


def test_hadolint_finds_nothing_at_warning_level() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_dockerfile_with_warnings(tmp_path: Path) -> None:
    """The lint above can fail: an untagged base image and unpinned packages are warnings."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install -y curl\n")
    result = hadolint(bad)
    assert result.returncode != 0, result.stdout + result.stderr


# --- stages and dependencies -------------------------------------------------------------------


def test_the_image_is_built_in_stages(image: Image) -> None:
    assert len(image.stages) >= 2, [s.base for s in image.stages]


def test_the_final_stage_is_a_slim_python_image(image: Image) -> None:
    assert SLIM_PYTHON.fullmatch(image.final.base), image.final.base


def test_the_virtualenv_comes_from_a_stage_on_the_same_python(image: Image) -> None:
    """A virtualenv is tied to its interpreter and its path: same base image, same place."""
    copies = [dockerfile.copy(i) for i in image.final.all("COPY")]
    venvs = [c for c in copies if c.from_stage is not None and VENV_IN_IMAGE in c.sources]
    assert len(venvs) == 1, copies
    venv = venvs[0]
    assert venv.destination.rstrip("/") == VENV_IN_IMAGE
    assert venv.from_stage is not None
    build = stage_named(image, venv.from_stage)
    assert build.base == image.final.base
    assert any(
        f"-m venv {VENV_IN_IMAGE}" in " ".join(i.arguments.split()) for i in build.all("RUN")
    ), build.all("RUN")


def test_dependencies_are_installed_from_the_lock_with_hashes(image: Image) -> None:
    installs = [
        (stage, shlex.split(run.arguments))
        for stage in image.stages
        for run in stage.all("RUN")
        if "pip install" in " ".join(run.arguments.split())
    ]
    assert installs, "no RUN pip install"
    for stage, words in installs:
        assert "--require-hashes" in words, words
        requirement_files = [
            words[n + 1] for n, word in enumerate(words[:-1]) if word in {"-r", "--requirement"}
        ]
        assert requirement_files, words
        locks = {c.destination for c in context_copies(stage) if c.sources == (LOCK,)}
        for path in requirement_files:
            assert posixpath.basename(path) == LOCK, words
            assert path in locks or posixpath.dirname(path) + "/" in locks, (path, locks)


def test_every_locked_requirement_is_pinned_and_hashed() -> None:
    entries = lock.entries(REPO / LOCK)
    assert entries, f"{LOCK} is empty"
    for name, lines in entries.items():
        assert "==" in lines[0], (name, lines)
        assert any(line.startswith("--hash=sha256:") for line in lines), (name, lines)


def test_the_lock_holds_every_runtime_dependency() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {lock.requirement_name(d) for d in project["dependencies"]}
    missing = wanted - set(lock.entries(REPO / LOCK))
    assert not missing, f"in pyproject.toml but not in {LOCK}: {sorted(missing)}"


# --- the final stage ---------------------------------------------------------------------------


def test_the_final_stage_runs_as_a_user_other_than_root(image: Image) -> None:
    user = image.final.last("USER")
    assert user is not None, "the final stage has no USER: it would run as root"
    name = user.arguments.split(":")[0].strip()
    assert name, user
    assert name not in {"root", "0"}, user


def test_cmd_and_healthcheck_are_in_exec_form(image: Image) -> None:
    # Exec form: the server is PID 1 and gets `docker stop`'s signal, not a shell.
    assert image.startup_argv()
    assert image.healthcheck_argv()


def test_the_service_starts_with_the_cli_serve_command(image: Image) -> None:
    argv = image.startup_argv()
    assert posixpath.basename(argv[0]).startswith("python"), argv
    assert argv[1:] == ["-m", "cli", "serve"], argv


def test_the_healthcheck_runs_the_cli_healthcheck_command(image: Image) -> None:
    """`chatapi healthcheck` asks /health/ready (test_startup.py runs it against a server)."""
    argv = image.healthcheck_argv()
    assert posixpath.basename(argv[0]).startswith("python"), argv
    assert argv[1:] == ["-m", "cli", "healthcheck"], argv


def test_nothing_needs_curl_or_wget(image: Image) -> None:
    for instruction in image.final.instructions:
        words = set(re.findall(r"[\w.-]+", instruction.arguments))
        assert not words & {"curl", "wget"}, str(instruction)


def test_docker_stop_sends_a_signal_the_server_shuts_down_on(image: Image) -> None:
    # uvicorn shuts down gracefully on SIGTERM and SIGINT; another signal would just kill it.
    assert image.stop_signal() in {signal.SIGTERM, signal.SIGINT}


def test_the_image_exposes_the_port_it_serves_on(image: Image) -> None:
    exposed = {
        int(port.split("/")[0]) for e in image.final.all("EXPOSE") for port in e.arguments.split()
    }
    assert int(image.environment()["PORT"]) in exposed, exposed


def test_every_path_copied_from_the_build_context_exists(image: Image) -> None:
    for source in all_context_sources(image):
        wildcard = any(ch in source for ch in "*?[")
        found = list(REPO.glob(source)) if wildcard else [REPO / source]
        assert found, source
        assert all(path.exists() for path in found), source


def test_the_source_is_laid_out_in_workdir_as_in_the_repository(image: Image) -> None:
    """So the repository root can stand in for /app when test_startup.py runs the commands."""
    assert image.workdir == "/app"
    for copied in context_copies(image.final):
        for source in copied.sources:
            into = posixpath.join(image.workdir, copied.destination)
            if copied.destination.endswith("/") or len(copied.sources) > 1:
                into = posixpath.join(into, posixpath.basename(source))
            assert posixpath.normpath(into) == posixpath.join(image.workdir, source), copied


def test_everything_the_service_runs_is_copied_into_the_image(image: Image) -> None:
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]
    needed = {*tool["setuptools"]["packages"], "alembic", "alembic.ini"}
    copied = {s.rstrip("/") for c in context_copies(image.final) for s in c.sources}
    assert needed <= copied, f"not copied into the image: {sorted(needed - copied)}"


# --- .dockerignore -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [".git", ".venv", ".venv/bin/python", ".git/HEAD"])
def test_the_dockerignore_keeps_local_state_out_of_the_context(path: str) -> None:
    assert dockerignore.ignored(path, dockerignore.rules(DOCKERIGNORE.read_text())), path


def test_the_dockerignore_keeps_in_everything_the_dockerfile_copies(image: Image) -> None:
    rules = dockerignore.rules(DOCKERIGNORE.read_text())
    for source in all_context_sources(image):
        assert not dockerignore.ignored(source, rules), source
