"""Fixtures of the integration tests beside those of tests/conftest.py."""

# The hint channel's database, for test_hints and test_follow (test_database_unavailable
# declares a postgres_url of its own).
from tests.support.hint_database import admin, postgres_url  # noqa: F401  (fixtures)
