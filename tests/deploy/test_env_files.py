"""deploy/make-env-files.sh: the env files of the compose files, every secret fresh, each
file for its services only, never replacing one."""

import re
import stat
from pathlib import Path
from typing import Any

from tests.deploy import compose as c
from tests.deploy import dockerignore
from tests.deploy.conftest import (
    ENV_FILES_DIRECTORY,
    EnvFiles,
    example_env_file,
    make_env_files,
    read_env_files,
)
from tests.deploy.image import DOCKERIGNORE
from tests.deploy.postgres_image import describe
from tests.deploy.test_compose import git_ignores

SECRETS_FILE = "deploy/chatapi.env"
RANDOM_VALUE = re.compile(r"[0-9a-f]{64}")  # 32 random bytes, nothing to quote


def test_it_makes_each_env_file_the_compose_files_read_and_no_other(
    replica_compose: dict[str, Any], env_file_contents: EnvFiles
) -> None:
    read = {path for s in replica_compose["services"].values() for path in c.env_files(s)}
    assert set(env_file_contents) == read
    assert all(path.startswith(f"{ENV_FILES_DIRECTORY}/") for path in read), read


def test_every_value_is_random_and_none_repeats_but_a_roles_password(
    env_file_contents: EnvFiles,
) -> None:
    values = [value for variables in env_file_contents.values() for value in variables.values()]
    for value in values:
        assert RANDOM_VALUE.fullmatch(value), value
    postgres = env_file_contents["deploy/postgres.env"]
    # Each role's password is in db's file and in the file of the service connecting as it.
    assert env_file_contents[SECRETS_FILE]["PGPASSWORD"] == postgres["CHATAPI_APP_PASSWORD"]
    assert (
        env_file_contents["deploy/migrate.env"]["PGPASSWORD"] == postgres["CHATAPI_OWNER_PASSWORD"]
    )
    assert len(set(values)) == len(values) - 2, values


def test_the_apis_file_names_what_its_example_does(env_file_contents: EnvFiles) -> None:
    """The example documents every line the script writes (and optional ones besides)."""
    assert set(env_file_contents[SECRETS_FILE]) == set(example_env_file(SECRETS_FILE))


def test_each_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    made = make_env_files(tmp_path)
    assert made.returncode == 0, describe(made)
    files = sorted(tmp_path.iterdir())
    assert [path.name for path in files] == ["chatapi.env", "migrate.env", "postgres.env"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_it_never_replaces_a_file_nor_makes_the_others_then(tmp_path: Path) -> None:
    kept = tmp_path / "migrate.env"
    kept.write_text("PGPASSWORD=the-one-db-was-made-with\n")
    made = make_env_files(tmp_path)
    assert made.returncode != 0, describe(made)
    assert "migrate.env exists" in made.stderr, describe(made)
    assert kept.read_text() == "PGPASSWORD=the-one-db-was-made-with\n"
    assert [path.name for path in tmp_path.iterdir()] == ["migrate.env"]


def test_two_runs_make_different_secrets(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for directory in (first, second):
        directory.mkdir()
        assert make_env_files(directory).returncode == 0
    a, b = read_env_files(first), read_env_files(second)
    for path, variables in a.items():
        for name, value in variables.items():
            assert b[path][name] != value, (path, name)


def test_a_copy_cut_short_stays_out_of_git_and_of_the_image_too() -> None:
    """The files are written whole in a directory beside them first (removed at the end)."""
    partial = "deploy/.make-env-files.4242/postgres.env"
    assert git_ignores(partial)
    assert dockerignore.ignored(partial, dockerignore.rules(DOCKERIGNORE.read_text()))
