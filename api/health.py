"""Liveness and readiness, for orchestrators and the container's HEALTHCHECK."""

from typing import Literal

from fastapi import HTTPException, Request, status
from pydantic import BaseModel, Field

from api.admission import Admission
from api.routing import SlashAgnosticRouter
from api.schemas import UNAVAILABLE
from infrastructure import migrations
from infrastructure.container import Container
from infrastructure.replica_status import ReplicaStatus, replica_status
from infrastructure.schema import NOT_MIGRATED

router = SlashAgnosticRouter(prefix="/health", tags=["health"])


class ReadTarget(BaseModel):
    target: Literal["replica"]
    up: bool
    replay_lag_seconds: float | None = Field(
        description="Seconds the replica's replay is behind; absent when it is down."
    )


class Health(BaseModel):
    status: Literal["alive", "ready"]
    read_targets: list[ReadTarget] | None = Field(
        default=None,
        description=(
            "With READ_DATABASE_URL only: the replica. The service stays ready while it is "
            "down (its reads go to the primary)."
        ),
    )


@router.get(
    "/live",
    operation_id="live",
    response_model_exclude_none=True,
    summary="Is the process up",
    response_description="Always `alive` while the process can answer.",
    responses={200: {"content": {"application/json": {"example": {"status": "alive"}}}}},
)
async def live() -> Health:
    """Answers without touching the database: a failing database must not restart the process."""
    return Health(status="alive")


@router.get(
    "/ready",
    operation_id="ready",
    response_model_exclude_none=True,
    summary="Can the service take requests",
    response_description="The database answers and its schema is at the latest migration.",
    responses={
        200: {"content": {"application/json": {"example": {"status": "ready"}}}},
        **UNAVAILABLE,
    },
)
async def ready(request: Request) -> Health:
    """Checks that the database is reachable and migrated; 503 with `Retry-After` if not."""
    container: Container = request.app.state.container
    admission: Admission = request.app.state.admission
    settings = container.settings()
    # A database that cannot be reached raises here and becomes the usual 503; one that
    # does not answer within READY_TIMEOUT, a 503 too. With a replica, the primary is
    # checked: a replica that is down only sends its reads to the primary.
    engine = container.write_engine() if settings.has_replica else container.read_engine()
    at_head = await admission.run(migrations.is_at_head, engine, timeout=settings.ready_timeout)
    if not at_head:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=NOT_MIGRATED,
            headers={"Retry-After": str(container.settings().retry_after)},
        )
    if not settings.has_replica:
        return Health(status="ready")
    skip = container.replica_skip()
    replica = (
        ReplicaStatus(up=False, replay_lag_seconds=None)  # found down lately: not tried
        if skip.active()
        else await admission.run(
            replica_status, container.read_engine(), timeout=settings.ready_timeout
        )
    )
    target = ReadTarget(
        target="replica", up=replica.up, replay_lag_seconds=replica.replay_lag_seconds
    )
    return Health(status="ready", read_targets=[target])
