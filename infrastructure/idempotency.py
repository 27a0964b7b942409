"""Idempotency keys: a retried command gets its first result back instead of running again.

A handler claims the key inside its own transaction, before it changes anything. The claim
is a row in `idempotency_keys`, committed together with the command's changes and result,
so a key is either unused or used with its result, never half. A concurrent retry with the
same key waits on that row (the primary key's unique index on PostgreSQL, the database write
lock on SQLite) until the first commits, then replays its result; if the first rolls back,
the retry runs the command itself.
"""

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import TypeAdapter
from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from domain.errors import IdempotencyKeyReused
from infrastructure.tables import IdempotencyKeyRecord

keys = IdempotencyKeyRecord.__table__  # type: ignore[attr-defined]

Result = TypeVar("Result")


# Building a TypeAdapter compiles a schema: once per result type, not per request.
_adapters: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(result_type: type[Any]) -> TypeAdapter[Any]:
    if result_type not in _adapters:
        _adapters[result_type] = TypeAdapter(result_type)
    return _adapters[result_type]


def fingerprint(request: dict[str, Any]) -> str:
    """What identifies "the same request": its command's fields, not the key."""
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


class IdempotencyKeys:
    def __init__(self, ttl_seconds: float, clock: Callable[[], datetime]) -> None:
        self._ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock

    def replay(
        self,
        connection: Connection,
        scope: str,
        key: str,
        request: dict[str, Any],
        result_type: type[Result],
        chat_id: int | None = None,
    ) -> Result | None:
        """The result first produced under this key, or None once the key is claimed here.

        Raises IdempotencyKeyReused when the key was first used for a different request.
        """
        now = self._clock()
        # An expired key is forgotten, whether or not the periodic purge got to it yet.
        connection.execute(
            delete(keys).where(
                keys.c.scope == scope, keys.c.key == key, keys.c.created_at < now - self._ttl
            )
        )
        postgres = connection.dialect.name == "postgresql"
        insert = postgresql.insert if postgres else sqlite.insert
        claimed = connection.execute(
            insert(keys)
            .values(
                scope=scope,
                key=key,
                chat_id=chat_id,
                fingerprint=fingerprint(request),
                created_at=now,
            )
            .on_conflict_do_nothing()
            .returning(keys.c.key)
        ).first()
        if claimed is not None:
            return None
        used = connection.execute(
            select(keys.c.fingerprint, keys.c.result).where(
                keys.c.scope == scope, keys.c.key == key
            )
        ).one()
        if used.fingerprint != fingerprint(request):
            raise IdempotencyKeyReused(key)
        replayed: Result = _adapter(result_type).validate_json(used.result)
        return replayed

    def remember(self, connection: Connection, scope: str, key: str, result: object) -> None:
        """Store the result under the key claimed by `replay`, in the same transaction."""
        connection.execute(
            update(keys)
            .where(keys.c.scope == scope, keys.c.key == key)
            .values(result=_adapter(type(result)).dump_json(result).decode())
        )

    def purge(self, engine: Engine) -> int:
        """Delete every expired key; returns how many."""
        with engine.begin() as connection:
            deleted = connection.execute(
                delete(keys).where(keys.c.created_at < self._clock() - self._ttl)
            )
        return deleted.rowcount
