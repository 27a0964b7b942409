"""Liveness and readiness, for orchestrators and the container's HEALTHCHECK."""

from typing import Literal

from fastapi import HTTPException, Request, status
from pydantic import BaseModel

from api.admission import Admission
from api.routing import SlashAgnosticRouter
from api.schemas import UNAVAILABLE
from infrastructure import migrations
from infrastructure.container import Container
from infrastructure.schema import NOT_MIGRATED

router = SlashAgnosticRouter(prefix="/health", tags=["health"])


class Health(BaseModel):
    status: Literal["alive", "ready"]


@router.get(
    "/live",
    operation_id="live",
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
    # A database that cannot be reached raises here and becomes the usual 503; one that
    # does not answer within READY_TIMEOUT, a 503 too.
    at_head = await admission.run(
        migrations.is_at_head, container.read_engine(), timeout=container.settings().ready_timeout
    )
    if not at_head:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=NOT_MIGRATED,
            headers={"Retry-After": str(container.settings().retry_after)},
        )
    return Health(status="ready")
