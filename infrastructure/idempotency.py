"""Idempotency keys: a retried command gets its first result back instead of running again.

`UnitOfWork.once` claims the key inside the command's transaction, before the command changes
anything. The claim is a row in `idempotency_keys`, committed together with the command's
changes and result, so a key is either unused or used with its result, never half. A
concurrent retry with the same key waits on that row (the primary key's unique index on
PostgreSQL, the database write lock on SQLite) until the first commits, then replays its
result; if the first rolls back, the retry runs the command itself.
"""

import hashlib
import json
from dataclasses import Field, replace
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import TypeAdapter
from sqlalchemy import Connection, Engine, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from domain.errors import IdempotencyKeyReused
from domain.principals import Principal
from infrastructure.clock import Clock
from infrastructure.tables import chats
from infrastructure.tables import idempotency_keys as keys


class Replayable(Protocol):
    """A command's result: a dataclass that says whether it only repeats an earlier one."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    @property
    def replayed(self) -> bool: ...


Result = TypeVar("Result", bound=Replayable)

# Built once: constructing statements per call costs more than running them. The bound names
# are not the columns': an UPDATE reserves those for its SET clause.
THIS_KEY = (keys.c.scope == bindparam("in_scope")) & (keys.c.key == bindparam("named"))
FORGET = delete(keys).where(THIS_KEY)
DELETED_CHAT = select(chats.c.id).where(
    chats.c.id == bindparam("chat_id"), chats.c.deleted_at.is_not(None)
)
FORGET_EXPIRED = delete(keys).where(THIS_KEY, keys.c.created_at < bindparam("expired_before"))
CLAIM = {
    "postgresql": postgresql.insert(keys).on_conflict_do_nothing().returning(keys.c.key),
    "sqlite": sqlite.insert(keys).on_conflict_do_nothing().returning(keys.c.key),
}
FIRST_USE = select(keys.c.fingerprint, keys.c.result).where(THIS_KEY)
REMEMBER = update(keys).where(THIS_KEY).values(result=bindparam("first_result"))
# The same, for a key whose result is a chat: it goes with the chat (ON DELETE CASCADE).
REMEMBER_FOR_CHAT = (
    update(keys)
    .where(THIS_KEY)
    .values(result=bindparam("first_result"), chat_id=bindparam("of_chat"))
)
PURGE = delete(keys).where(keys.c.created_at < bindparam("expired_before"))

# What is stored is the first result itself; whether it is being replayed, and the position a
# read must wait for, are said on the way out.
NOT_STORED = {"replayed", "consistency_token"}

# Building a TypeAdapter compiles a schema: once per result type, not per request.
_adapters: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(result_type: type[Any]) -> TypeAdapter[Any]:
    if result_type not in _adapters:
        _adapters[result_type] = TypeAdapter(result_type)
    return _adapters[result_type]


def fingerprint(request: dict[str, Any]) -> str:
    """What identifies "the same request": its command's fields, not the key."""
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


def scope_of(principal: Principal, operation: str, chat_id: int | None) -> str:
    """Keys are per caller and operation, and per chat for an operation on one (deleted
    with it). The local caller's keep the form they had before callers existed."""
    scope = operation if chat_id is None else f"{operation}:{chat_id}"
    return scope if principal.kind == "local" else f"{principal.scope}/{scope}"


def expired_before(now: datetime, ttl_seconds: float) -> datetime:
    return now - timedelta(seconds=ttl_seconds)


def claim(
    connection: Connection,
    now: datetime,
    ttl_seconds: float,
    scope: str,
    key: str,
    chat_id: int | None,
    request: dict[str, Any],
    result_type: type[Result],
) -> Result | None:
    """The result first produced under this key, marked replayed; or None once the key is
    claimed here, for `remember` to complete in the same transaction.

    Raises IdempotencyKeyReused when the key was first used for a different request.
    """
    this_key = {"in_scope": scope, "named": key}
    # An expired key is forgotten, whether or not the periodic purge got to it yet.
    connection.execute(
        FORGET_EXPIRED, {**this_key, "expired_before": expired_before(now, ttl_seconds)}
    )
    used_for = fingerprint(request)
    claimed = connection.execute(
        CLAIM[connection.dialect.name],
        {
            "scope": scope,
            "key": key,
            "chat_id": chat_id,
            "fingerprint": used_for,
            "created_at": now,
        },
    ).first()
    if claimed is not None:
        return None
    first = connection.execute(FIRST_USE, this_key).one()
    if first.fingerprint != used_for:
        raise IdempotencyKeyReused(key)
    first_result: Result = _adapter(result_type).validate_json(first.result)
    return replace(first_result, replayed=True)


def remember(
    connection: Connection,
    scope: str,
    key: str,
    result: Replayable,
    belongs_to_chat: int | None = None,
) -> None:
    """Store the result under the key just claimed, in the same transaction; with
    `belongs_to_chat`, the key is deleted with that chat (a retry then finds no result)."""
    stored = _adapter(type(result)).dump_json(result, exclude=NOT_STORED).decode()
    this_key = {"in_scope": scope, "named": key, "first_result": stored}
    if belongs_to_chat is None:
        connection.execute(REMEMBER, this_key)
    else:
        connection.execute(REMEMBER_FOR_CHAT, {**this_key, "of_chat": belongs_to_chat})


def purge(engine: Engine, clock: Clock, ttl_seconds: float) -> int:
    """Delete every expired key in a transaction of its own; returns how many."""
    with engine.begin() as connection:
        return purge_in(connection, clock(), ttl_seconds)


def purge_in(connection: Connection, now: datetime, ttl_seconds: float) -> int:
    """Delete every expired key, in the caller's transaction; returns how many."""
    deleted = connection.execute(PURGE, {"expired_before": expired_before(now, ttl_seconds)})
    return deleted.rowcount


def chat_is_deleted(connection: Connection, chat_id: int) -> bool:
    """Whether the chat has a tombstone: deleted, its purge (and its keys') still to come."""
    return connection.execute(DELETED_CHAT, {"chat_id": chat_id}).first() is not None


def forget(connection: Connection, scope: str, key: str) -> None:
    connection.execute(FORGET, {"in_scope": scope, "named": key})
