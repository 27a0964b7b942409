"""Each reliability module gets a PostgreSQL cluster of its own: it restarts or loads it.

The cluster keeps the port chosen when it was created, so a restart comes back on the same
address and the service under test can reconnect to it by itself.
"""

from collections.abc import Iterator

import pytest

from devtools.postgres_cluster import NO_BINARIES, PostgresCluster, find_bindir, started_cluster
from infrastructure import migrations
from tests.conftest import REQUIRE_POSTGRES, create_database


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[PostgresCluster]:
    """A started throwaway PostgreSQL cluster for this module only, removed afterwards."""
    bindir = find_bindir()
    if bindir is None:
        if REQUIRE_POSTGRES:
            pytest.fail(f"CHATAPI_REQUIRE_POSTGRES=1 but {NO_BINARIES}")
        pytest.skip(f"the reliability tests need their own PostgreSQL cluster: {NO_BINARIES}")
    with started_cluster(bindir) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def own_database(own_cluster: PostgresCluster) -> str:
    """A migrated database on the module's own cluster."""
    url = create_database(own_cluster.url, "chatapi_reliability")
    migrations.upgrade(url)
    return url
