"""The Schemathesis configuration of both fuzz runs, read from schemathesis.toml beside this."""

from pathlib import Path

from schemathesis.config import SchemathesisConfig

CONFIG_FILE = Path(__file__).with_name("schemathesis.toml")


def load(max_examples: int) -> SchemathesisConfig:
    """The shared settings, generating up to `max_examples` cases per operation (and scenarios)."""
    config = SchemathesisConfig.from_path(CONFIG_FILE)
    config.projects.override.generation.update(max_examples=max_examples)
    return config
