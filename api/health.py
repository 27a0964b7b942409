"""Liveness and readiness, for orchestrators and the container's HEALTHCHECK."""

import asyncio
from typing import Literal

from fastapi import HTTPException, Request, status
from pydantic import BaseModel, Field

from api.admission import Admission, Busy
from api.routing import SlashAgnosticRouter
from api.schemas import UNAVAILABLE
from infrastructure import migrations
from infrastructure.container import Container
from infrastructure.replicas import Replica, ReplicaStatus
from infrastructure.schema import NOT_MIGRATED

router = SlashAgnosticRouter(prefix="/health", tags=["health"])


class ReadTarget(BaseModel):
    target: str = Field(description="The replica: host:port/database.")
    up: bool = Field(description="Whether it answers and is not left aside (down or behind).")
    replay_lag_seconds: float | None = Field(
        default=None, description="Seconds its replay is behind; absent when it is not up."
    )


class Health(BaseModel):
    status: Literal["alive", "ready"]
    read_targets: list[ReadTarget] | None = Field(
        default=None,
        description=(
            "With READ_DATABASE_URL only: each replica. The service stays ready while they "
            "are down (their reads go to the others, or to the primary)."
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
    # does not answer within READY_TIMEOUT, a 503 too. The primary decides: replicas that
    # are down only send their reads elsewhere.
    at_head = await admission.run(
        migrations.is_at_head, container.read_engine(), timeout=settings.ready_timeout
    )
    if not at_head:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=NOT_MIGRATED,
            headers={"Retry-After": str(container.settings().retry_after)},
        )
    replicas = container.replicas()
    if not replicas:
        return Health(status="ready")
    targets = await asyncio.gather(
        *(status_within(admission, replica, settings.ready_timeout) for replica in replicas.members)
    )
    return Health(
        status="ready",
        read_targets=[
            ReadTarget(target=t.name, up=t.up, replay_lag_seconds=t.replay_lag_seconds)
            for t in targets
        ],
    )


async def status_within(admission: Admission, replica: Replica, timeout: float) -> ReplicaStatus:
    """The replica's status; down if it does not answer within `timeout`."""
    try:
        return await admission.run(Replica.status, replica, timeout=timeout)
    except Busy:
        return ReplicaStatus(replica.name, up=False, replay_lag_seconds=None)
