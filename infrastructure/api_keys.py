"""Services' API keys: `chatapi_sk_<id>_<secret>`, with 256 random bits of secret.

Only an HMAC-SHA256 of the secret under the server's pepper (AUTH_KEY_PEPPER, or one derived
from AUTH_JWT_SECRET) is stored: a copy of the database does not give the keys, nor a way to
test guesses without the pepper. Keys are checked on the primary (a revoked key is refused
at once, not once a replica has replayed it), compared with hmac.compare_digest, also when
the id is unknown, so that the time taken does not tell which ids exist.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, insert, or_, select, update

from domain.errors import InvalidInput, NotFound, Unauthenticated
from domain.principals import Principal, service
from infrastructure.clock import Clock
from infrastructure.tables import api_keys

KEY_PREFIX = "chatapi_sk_"
_KEY = re.compile(rf"^{KEY_PREFIX}(?P<id>[0-9a-f]{{16}})_(?P<secret>[0-9a-f]{{64}})$")
NAME_MAX_LENGTH = 100
# last_used_at is written at most this often per key: not a write per request.
LAST_USED_RESOLUTION = timedelta(seconds=60)
# Compared against when the id is unknown: the same work as for a known one.
_NO_SUCH_KEY = "0" * 64

FIND = select(api_keys.c.secret_hash, api_keys.c.revoked_at).where(
    api_keys.c.id == bindparam("key_id")
)
TOUCH = (
    update(api_keys)
    .where(
        api_keys.c.id == bindparam("key_id"),
        or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < bindparam("stale")),
    )
    .values(last_used_at=bindparam("now"))
)
REVOKE = (
    update(api_keys)
    .where(api_keys.c.id == bindparam("key_id"), api_keys.c.revoked_at.is_(None))
    .values(revoked_at=bindparam("now"))
)
LIST = select(
    api_keys.c.id,
    api_keys.c.name,
    api_keys.c.created_at,
    api_keys.c.last_used_at,
    api_keys.c.revoked_at,
).order_by(api_keys.c.created_at, api_keys.c.id)


def is_api_key(credential: str) -> bool:
    """API keys are recognisable by their prefix (leaked ones too); the rest are JWTs."""
    return credential.startswith(KEY_PREFIX)


class KeyNotFound(NotFound):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key {key_id!r} not found")


class NoPepper(Exception):
    """API keys cannot be made or checked without AUTH_KEY_PEPPER or AUTH_JWT_SECRET."""


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeys:
    def __init__(self, engine: Engine, pepper: bytes | None, clock: Clock) -> None:
        self._engine = engine
        self._pepper = pepper
        self._clock = clock

    def _hash(self, secret: str) -> str:
        if self._pepper is None:
            raise NoPepper(
                "API keys need AUTH_KEY_PEPPER or AUTH_JWT_SECRET (at least 32 bytes) to be "
                "made or checked"
            )
        return hmac.new(self._pepper, secret.encode(), hashlib.sha256).hexdigest()

    def create(self, name: str) -> tuple[ApiKeyInfo, str]:
        """A new key named `name`, and the key itself: shown once, never stored."""
        name = name.strip()
        if not 1 <= len(name) <= NAME_MAX_LENGTH or "\x00" in name:
            raise InvalidInput("name", f"a key's name is 1..{NAME_MAX_LENGTH} characters")
        key_id, secret = secrets.token_hex(8), secrets.token_hex(32)
        info = ApiKeyInfo(key_id, name, self._clock(), None, None)
        with self._engine.begin() as connection:
            connection.execute(
                insert(api_keys),
                {
                    "id": key_id,
                    "name": name,
                    "secret_hash": self._hash(secret),
                    "created_at": info.created_at,
                },
            )
        return info, f"{KEY_PREFIX}{key_id}_{secret}"

    def list(self) -> list[ApiKeyInfo]:
        with self._engine.connect() as connection:
            return [ApiKeyInfo(*row) for row in connection.execute(LIST)]

    def revoke(self, key_id: str) -> None:
        """From now on the key is refused; revoking a revoked key changes nothing."""
        with self._engine.begin() as connection:
            connection.execute(REVOKE, {"key_id": key_id, "now": self._clock()})
            if connection.execute(FIND, {"key_id": key_id}).first() is None:
                raise KeyNotFound(key_id)

    def verify(self, key: str) -> Principal:
        """The service the key belongs to; Unauthenticated if it is unknown, wrong or
        revoked (one message for all three)."""
        parts = _KEY.fullmatch(key)
        if parts is None:
            raise Unauthenticated("the API key is malformed")
        key_id = parts["id"]
        computed = self._hash(parts["secret"])
        now = self._clock()
        with self._engine.connect() as connection:
            row = connection.execute(FIND, {"key_id": key_id}).first()
            stored = _NO_SUCH_KEY if row is None else row.secret_hash
            matches = hmac.compare_digest(computed, stored)
            if row is None or not matches or row.revoked_at is not None:
                raise Unauthenticated("the API key is not valid, or has been revoked")
            connection.execute(
                TOUCH, {"key_id": key_id, "now": now, "stale": now - LAST_USED_RESOLUTION}
            )
            connection.commit()
        return service(key_id)
