"""What the image runs, read from the Dockerfile and mapped onto this checkout.

The final stage puts the locked virtualenv at /opt/venv and the source at WORKDIR /app. Here
the project's own virtualenv stands in for /opt/venv and the repository root for /app (the
Dockerfile copies each source path to the same place under /app, which a test checks).
"""

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.deploy import dockerfile
from tests.deploy.dockerfile import Stage

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE_FILE = REPO / "docker-compose.yml"
# Over COMPOSE_FILE (`docker compose -f docker-compose.yml -f deploy/compose.replica.yml`):
# the api's reads on a hot standby.
REPLICA_COMPOSE_FILE = REPO / "deploy" / "compose.replica.yml"
DOCKERIGNORE = REPO / ".dockerignore"
VENV_IN_IMAGE = "/opt/venv"
HOST_VENV_BIN = Path(sys.executable).parent


def host_path_without_venv() -> str:
    """This machine's PATH as the base image's: without the virtualenv, which only the
    Dockerfile's own ENV PATH may bring in."""
    entries = os.environ.get("PATH", os.defpath).split(os.pathsep)
    return os.pathsep.join(e for e in entries if e and Path(e).resolve() != HOST_VENV_BIN.resolve())


@dataclass(frozen=True)
class Image:
    stages: list[Stage]

    @classmethod
    def read(cls) -> "Image":
        return cls(dockerfile.parse(DOCKERFILE))

    @property
    def final(self) -> Stage:
        assert self.stages, "the Dockerfile has no FROM"
        return self.stages[-1]

    @property
    def workdir(self) -> str:
        found = self.final.last("WORKDIR")
        assert found is not None, "the final stage has no WORKDIR"
        return found.arguments

    def environment(self) -> dict[str, str]:
        """The final stage's ENV, over a base image environment, with its paths mapped here."""
        base = {"PATH": host_path_without_venv(), "LANG": "C.UTF-8"}
        in_image = dockerfile.apply_env(self.final, base)
        return {name: self._map_paths(value) for name, value in in_image.items()}

    def _map_paths(self, value: str) -> str:
        places = {f"{VENV_IN_IMAGE}/bin": str(HOST_VENV_BIN), self.workdir: str(REPO)}
        return os.pathsep.join(places.get(entry, entry) for entry in value.split(os.pathsep))

    def exec_form(self, keyword: str) -> list[str]:
        found = self.final.last(keyword)
        assert found is not None, f"the final stage has no {keyword}"
        argv = dockerfile.exec_form(found.arguments)
        assert argv, f"{found} is not in exec form (a JSON array)"
        return argv

    def startup_argv(self) -> list[str]:
        """What `docker run` starts: ENTRYPOINT + CMD when there is an ENTRYPOINT, else CMD."""
        entrypoint = self.exec_form("ENTRYPOINT") if self.final.last("ENTRYPOINT") else []
        return [*entrypoint, *self.exec_form("CMD")]

    def healthcheck(self) -> dockerfile.Healthcheck:
        found = self.final.last("HEALTHCHECK")
        assert found is not None, "the final stage has no HEALTHCHECK"
        return dockerfile.healthcheck(found)

    def healthcheck_argv(self) -> list[str]:
        command = self.healthcheck().command
        argv = dockerfile.exec_form(command)
        assert argv, f"HEALTHCHECK CMD {command} is not in exec form (a JSON array)"
        return argv

    def stop_signal(self) -> signal.Signals:
        """What `docker stop` sends: STOPSIGNAL, else SIGTERM."""
        found = self.final.last("STOPSIGNAL")
        if found is None:
            return signal.SIGTERM
        name = found.arguments.upper()
        return signal.Signals(int(name)) if name.isdigit() else signal.Signals[name]
