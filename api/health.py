"""Liveness and readiness, for orchestrators and the container's HEALTHCHECK.

Anyone may ask; the replicas' addresses and lags are told to operators only (a service):
anyone else learns whether each is up, and nothing that names or locates it.
"""

import asyncio
from typing import Literal

from fastapi import HTTPException, Request, status
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BaseModel, Field

from api.admission import Admission, Busy
from api.auth import auth_required, principal_of
from api.routing import SlashAgnosticRouter
from api.schemas import UNAVAILABLE
from domain.errors import Unauthenticated
from infrastructure import migrations
from infrastructure.api_keys import is_api_key
from infrastructure.container import Container
from infrastructure.replicas import Replica, ReplicaStatus
from infrastructure.schema import NOT_MIGRATED

router = SlashAgnosticRouter(prefix="/health", tags=["health"])


class ReadTarget(BaseModel):
    target: str | None = Field(
        default=None,
        description="The replica: host:port/database. Told to a service only (see `getReadiness`).",
    )
    up: bool = Field(description="Whether it answers and is not left aside (down or behind).")
    replay_lag_seconds: float | None = Field(
        default=None,
        description=(
            "Seconds its replay is behind; absent when it is not up. Told to a service only."
        ),
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
    operation_id="getLiveness",
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
    operation_id="getReadiness",
    response_model_exclude_none=True,
    summary="Can the service take requests",
    response_description="The database answers and its schema is at the latest migration.",
    responses={
        200: {"content": {"application/json": {"example": {"status": "ready"}}}},
        **UNAVAILABLE,
    },
)
async def ready(request: Request) -> Health:
    """Checks that the database is reachable and migrated; 503 with `Retry-After` if not.

    With replicas, says whether each is up. Where each is, and how far behind, is for
    operators only: a service (with AUTH_MODE=required, a request with a service's API key
    in `Authorization: Bearer`; with AUTH_MODE=none, every caller). No credential is needed,
    and one that is not a valid API key is no error: the answer is then the bare one."""
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
    if not await from_an_operator(request):
        return Health(status="ready", read_targets=[ReadTarget(up=t.up) for t in targets])
    return Health(
        status="ready",
        read_targets=[
            ReadTarget(target=t.name, up=t.up, replay_lag_seconds=t.replay_lag_seconds)
            for t in targets
        ],
    )


async def from_an_operator(request: Request) -> bool:
    """Whether the caller is a service, to whom the details may be told.

    AUTH_MODE=none: every caller acts as the local service (api/auth.py), which only a
    loopback HOST allows unless ALLOW_UNAUTHENTICATED says otherwise on purpose. Else a
    request whose `Authorization: Bearer` is a service's API key, verified as every endpoint
    verifies it; a user's token, or anything else, is not an operator's.
    """
    if not auth_required(request):
        return True
    scheme, credential = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() != "bearer" or not is_api_key(credential):
        return False
    try:
        principal = await principal_of(request, credential)
    except Unauthenticated:
        return False
    return principal.is_service


async def status_within(admission: Admission, replica: Replica, timeout: float) -> ReplicaStatus:
    """The replica's status; down if it does not answer within `timeout`."""
    try:
        return await admission.run(Replica.status, replica, timeout=timeout)
    except Busy:
        return ReplicaStatus(replica.name, up=False, replay_lag_seconds=None)
