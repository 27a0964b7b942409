"""READ_DATABASE_URL: the read side on a hot standby, the write side on the primary."""

from sqlalchemy import text

from devtools.postgres_cluster import PostgresCluster
from infrastructure import migrations
from tests.conftest import EmptyDatabases
from tests.support.replicas import caught_up, on, port_serving
from tests.support.servers import container_for

IN_RECOVERY = text("SELECT pg_is_in_recovery()")


def test_queries_read_from_the_read_database_and_commands_write_to_the_primary(
    databases: EmptyDatabases, standby: PostgresCluster
) -> None:
    url = databases.new("postgresql")
    migrations.upgrade(url)
    caught_up(url, standby)
    container = container_for(url, read_database_url=on(standby, url))
    try:
        assert port_serving(container.read_targets()) == standby.port
        (replica,) = container.replicas().members
        with replica.engine.connect() as connection:
            assert connection.execute(IN_RECOVERY).scalar_one() is True
        with container.write_engine().connect() as connection:
            assert connection.execute(IN_RECOVERY).scalar_one() is False
    finally:
        container.shutdown_resources()
