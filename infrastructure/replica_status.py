"""How a read replica is doing, as /health/ready reports it."""

from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

# Seconds the replica's replay is behind: 0 when it has replayed all it received, else the
# age of the last transaction it replayed (an idle primary sends nothing to replay).
REPLAY_LAG = text(
    "SELECT CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END"
)


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    up: bool
    replay_lag_seconds: float | None  # None when down, or when it is not replaying


def replica_status(engine: Engine) -> ReplicaStatus:
    try:
        with engine.connect() as connection:
            lag = connection.execute(REPLAY_LAG).scalar()
    except DBAPIError:
        return ReplicaStatus(up=False, replay_lag_seconds=None)
    return ReplicaStatus(up=True, replay_lag_seconds=None if lag is None else float(lag))
