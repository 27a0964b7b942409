"""Each reliability module gets a PostgreSQL cluster of its own: it restarts or loads it.

The cluster keeps the port chosen when it was created, so a restart comes back on the same
address and the service under test can reconnect to it by itself.
"""

import os
from collections.abc import Iterator

import pytest

from infrastructure import migrations
from tests.conftest import create_database
from tests.postgres_cluster import PostgresCluster, find_bindir


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[PostgresCluster]:
    """A started throwaway PostgreSQL cluster for this module only, removed afterwards."""
    bindir = find_bindir()
    if bindir is None:
        reason = "no PostgreSQL server binaries (pg_config --bindir, /usr/lib/postgresql/*/bin)"
        if os.environ.get("CHATAPI_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"CHATAPI_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(f"the reliability tests need their own PostgreSQL cluster: {reason}")
    cluster = PostgresCluster.create(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="module")
def own_database(own_cluster: PostgresCluster) -> str:
    """A migrated database on the module's own cluster."""
    url = create_database(own_cluster.url, "chatapi_reliability")
    migrations.upgrade(url)
    return url
