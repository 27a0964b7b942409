"""The Schemathesis configuration of both fuzz runs, read from schemathesis.toml beside this,
and the credential they send: the app is fuzzed as deployments serve it, AUTH_MODE=required,
as one user, so that Schemathesis's own authentication checks (a request without it, or with
a made-up one, must be a 401) have something to check."""

import os
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import TypeVar

import jwt
from schemathesis.config import SchemathesisConfig

CONFIG_FILE = Path(__file__).with_name("schemathesis.toml")
# The fuzzed server's AUTH_JWT_SECRET, and whom its token names.
SECRET = "fuzz-secret-of-at-least-32-bytes-0123456789"
USER = "fuzzer"
# Longer than any fuzz run.
TOKEN_SECONDS = 24 * 3600


E = TypeVar("E", bound=MutableMapping[str, str])
TOKEN_VARIABLE = "CHATAPI_FUZZ_TOKEN"  # read by schemathesis.toml's [auth.openapi.bearer]


def token() -> str:
    """A token of USER, signed as the users' application would sign it."""
    claims = {"sub": USER, "aud": "chatapi", "exp": int(time.time()) + TOKEN_SECONDS}
    return jwt.encode(claims, SECRET, algorithm="HS256")


def with_token(environment: E) -> E:
    """`environment` with the token schemathesis.toml sends (a fresh one if none is there)."""
    if TOKEN_VARIABLE not in environment:
        environment[TOKEN_VARIABLE] = token()
    return environment


def load(max_examples: int) -> SchemathesisConfig:
    """The shared settings, generating up to `max_examples` cases per operation (and
    scenarios)."""
    with_token(os.environ)
    config = SchemathesisConfig.from_path(CONFIG_FILE)
    config.projects.override.generation.update(max_examples=max_examples)
    return config
