"""Configuration, read from the environment when the container is built."""

import hashlib
import hmac
import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_DATABASE_URL = "sqlite:///./chatapi.db"
# The shortest secret HS256 is given: RFC 7518 asks for a key at least as long as its hash.
MIN_SECRET_BYTES = 32

# The URL schemes accepted, and the driver each one is served by.
DRIVERS = {
    "postgresql": "postgresql+psycopg2",
    "postgres": "postgresql+psycopg2",
    "postgresql+psycopg2": "postgresql+psycopg2",
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
}
DEFAULT_PORTS = {"http": 80, "https": 443}


def web_origin(value: str) -> str:
    """`value` as a browser sends it in `Origin` (scheme://host[:port]), or ValueError.

    Lower case and without a default port, because the CORS middleware compares strings.
    """
    if value == "*":
        return value
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        not value.isascii()  # browsers send a host's punycode form
        or parts.scheme not in DEFAULT_PORTS
        or not parts.hostname
        or port == -1
        or parts.username is not None
        or parts.path  # even a bare "/": an Origin never ends with one
        or "?" in value
        or "#" in value
    ):
        raise ValueError(f"not an origin (scheme://host[:port], nothing after it): {value!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    kept_port = "" if port in (None, DEFAULT_PORTS[parts.scheme]) else f":{port}"
    return f"{parts.scheme}://{host}{kept_port}"


def trusted_proxies(value: str) -> str:
    """`value` as uvicorn's `forwarded_allow_ips` takes it, or ValueError: `*` alone, or IP
    addresses and networks (`10.0.0.0/8`), comma-separated; empty trusts no one.

    uvicorn itself takes anything else for a name that never matches, without a word.
    """
    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    if entries == ["*"]:
        return "*"
    for entry in entries:
        try:
            ipaddress.ip_network(entry) if "/" in entry else ipaddress.ip_address(entry)
        except ValueError:
            raise ValueError(f"not an IP address or network (or * alone): {entry!r}") from None
    return ",".join(entries)


# What a database URL looks like, in the messages that refuse one. They never quote the URL
# itself, nor any part of it but its scheme: a part may hold (a piece of) its password.
URL_FORMS = "postgresql+psycopg2://user:password@host:port/database or sqlite:///path"
NOT_SHOWN = "the value is not shown: it may hold a password"
# Query parameters that carry a credential (libpq takes these beside the URL's own).
CREDENTIAL_PARAMETERS = frozenset({"password", "user", "sslpassword"})


def database_url(value: str) -> str:
    """`value` with the driver it is served by, or ValueError for a URL of no known database.

    An error never echoes `value`, nor any part of it but the scheme: a malformed URL may hold
    its password anywhere (`user:p@ss@host` reads `ss@host` as the host, a driver error would
    quote it)."""
    if not value.startswith("sqlite") and value.count("@") > 1:
        # The first '@' ends the user name and password: what follows a second one is a
        # piece of the password taken for a host, a database or an option.
        raise ValueError(
            "more than one '@' in the URL: write an '@' in the user name, password, "
            f"database or options as %40 ({NOT_SHOWN})"
        )
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(f"not a database URL: expected {URL_FORMS} ({NOT_SHOWN})") from None
    except ValueError:  # int() of whatever follows the host's ':'
        raise ValueError(
            f"not a database URL: the port after host: must be a number ({NOT_SHOWN})"
        ) from None
    # Plain postgresql:// would let SQLAlchemy pick psycopg 3, which is not installed.
    driver = DRIVERS.get(url.drivername)
    if driver is None:
        raise ValueError(
            "must be a postgresql+psycopg2:// (or postgresql://) "
            f"or sqlite:// URL, not {url.drivername}:// ({NOT_SHOWN})"
        )
    if url.port is not None and not 1 <= url.port <= 65535:
        raise ValueError(f"the URL's port must be from 1 to 65535 ({NOT_SHOWN})")
    parts = [url.username, url.password, url.host, url.database, *_query_strings(url)]
    if any("\x00" in part for part in parts if part):
        raise ValueError(f"the URL holds a NUL character (%00) ({NOT_SHOWN})")
    return url.set(drivername=driver).render_as_string(hide_password=False)


def _query_strings(url: URL) -> list[str]:
    strings: list[str] = []
    for key, value in url.query.items():
        strings += [key, *((value,) if isinstance(value, str) else value)]
    return strings


def shown_url(value: str) -> str:
    """A valid database URL as it may be shown: without its user name, its password, nor
    any credential in its query (`postgresql+psycopg2://db:5432/chatapi`)."""
    url = make_url(value)
    query = {k: v for k, v in url.query.items() if k not in CREDENTIAL_PARAMETERS}
    shown = URL.create(url.drivername, host=url.host, port=url.port, database=url.database)
    return shown.update_query_dict(query).render_as_string()


# Where one URL of a comma-separated list starts: at its scheme.
_NEXT_URL = re.compile(r",\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")
# The libpq multi-host form: scheme://[user[:password]@]host1[:port],host2[:port]/database?...
# The user name and password end at the first '@', as SQLAlchemy reads them (a password may
# hold a '/' or a ',').
_MULTI_HOST = re.compile(
    r"^(?P<scheme>[^:/]+://)(?P<user>[^:/@]*(?::[^@]*)?@)?(?P<hosts>[^/?]*)(?P<rest>.*)$"
)


def replica_urls(value: str) -> tuple[str, ...]:
    """One database URL per replica in `value`: URLs separated by commas, or one URL in
    libpq's multi-host form (`postgresql://u:p@replica1:5432,replica2:5432/chatapi`), or
    both; ValueError for anything that is not a database URL (never echoing it)."""
    urls: list[str] = []
    for url in _NEXT_URL.split(value.strip()):
        parts = _MULTI_HOST.match(url.strip())
        if parts is None or "," not in parts["hosts"]:
            urls.append(database_url(url.strip()))
            continue
        for host in parts["hosts"].split(","):
            if not host.strip():
                raise ValueError(f"an empty host in a multi-host URL ({NOT_SHOWN})")
            urls.append(
                database_url(f"{parts['scheme']}{parts['user'] or ''}{host.strip()}{parts['rest']}")
            )
    if any(url.startswith("sqlite") for url in urls):
        raise ValueError("replicas are PostgreSQL servers: an SQLite file has none")
    return tuple(dict.fromkeys(urls))


def problems(exc: ValidationError) -> str:
    """What is wrong with the settings, one line: each variable by its name, with what is
    wrong with it, never its value (`hide_input_in_errors`, and messages that quote none)."""
    return "; ".join(
        f"{'.'.join(map(str, error['loc'])).upper()}: {error['msg']}" for error in exc.errors()
    )


class Settings(BaseSettings):
    # An error names the setting, never echoes its value: it may be a secret.
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL; postgresql+psycopg2://user:pass@host/db in production.",
    )
    read_database_url: str | None = Field(
        default=None,
        description=(
            "Where queries read: PostgreSQL streaming replicas of DATABASE_URL's database, "
            "comma-separated URLs or one URL in libpq's multi-host form; reads take them in "
            "turn. Unset (or empty), reads go to DATABASE_URL itself."
        ),
    )
    replica_max_lag: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Seconds a replica's replay may be behind; one further behind is left aside "
            "(reads go to another replica, or DATABASE_URL) until it catches up."
        ),
    )
    replica_waits: int = Field(
        default=2,
        ge=1,
        description=(
            "Reads that may wait for a replica to replay their Consistency-Token at once per "
            "process (each holds a handler thread); beyond, they read from DATABASE_URL."
        ),
    )
    replica_wait: float = Field(
        default=0.5,
        ge=0,
        description=(
            "Seconds a read that brings a Consistency-Token waits for the replica to replay "
            "it; then it reads from DATABASE_URL."
        ),
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_size: int = Field(default=64 * 1024, ge=1, description="Largest request body, bytes.")
    access_log: bool = Field(
        default=True, description="Log one JSON line per request (api.request_log)."
    )
    telemetry: bool = Field(
        default=False,
        description=(
            "FastAPI's native OpenTelemetry spans and metrics, to the globally configured "
            "providers; off, requests skip the per-request provider lookups."
        ),
    )
    worker_threads: int = Field(
        # 4, not 8: the handlers share the event loop's core and GIL, and every hand-off of
        # the GIL between them and the loop costs CPU; at 4 a POST's throughput holds and the
        # loop keeps more of its core for the streams (docs/performance.md, issue 24).
        default=4,
        ge=1,
        description="Threads running handlers; each holds at most one database connection.",
    )
    loop_connections: int = Field(
        default=4,
        ge=0,
        # LOOP_READ_CONNECTIONS: its name while only reads ran there.
        validation_alias=AliasChoices("loop_connections", "loop_read_connections"),
        description=(
            "Connections of the event loop on PostgreSQL for the hot paths (a chat, its "
            "history, the chat list, a post without an idempotency key), run without a "
            "handler thread; 0 runs them in threads. Not used with READ_DATABASE_URL: they "
            "run in threads then."
        ),
    )
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for a free connection before a 503."
    )
    db_connect_timeout: int = Field(
        default=5, ge=1, description="Seconds to wait for PostgreSQL to accept a connection."
    )
    idempotency_ttl: float = Field(
        default=24 * 3600, gt=0, description="Seconds an Idempotency-Key is remembered."
    )
    idempotency_purge_interval: float = Field(
        default=300,
        gt=0,
        description="Seconds between purges of expired idempotency keys and stream tickets.",
    )
    jobs: Literal["in-process", "worker"] = Field(
        default="in-process",
        description=(
            "Who runs the background jobs (a deleted chat's purge, the periodic purges): "
            "`in-process`, a thread of each server process (one command does everything); "
            "`worker`, `chatapi worker` processes only."
        ),
    )
    job_batch_size: int = Field(
        # Small: how long one step holds PostgreSQL is what other requests feel (a 1M-message
        # chat: p99 of other chats 2.9x normal at 5,000, 2.2x at 2,000, 1.6x at 1,000, 1.0x at
        # 500: docs/performance.md); the purge takes longer (9 s at 5,000, 52 s at 500).
        default=500,
        ge=1,
        le=1_000_000,
        description="Rows one step of a background job deletes.",
    )
    job_batch_pause: float = Field(
        default=0.02,
        ge=0,
        description="Seconds between two steps of one chat's purge, left to the requests.",
    )
    job_poll_interval: float = Field(
        default=1.0, gt=0, description="Seconds between looks for a due job when none was."
    )
    worker_status_file: str = Field(
        default="/tmp/chatapi-worker.json",
        description="Where `chatapi worker` writes its status, for `chatapi worker --check`.",
    )
    retry_after: int = Field(
        default=2,
        ge=0,
        description="Retry-After seconds sent with a 503 when the database is down.",
    )
    workers: int = Field(
        default=1,
        ge=1,
        description="Processes `chatapi serve` runs (uvicorn workers); over 1 needs PostgreSQL.",
    )
    max_streams: int = Field(
        default=1000, ge=1, description="Event streams open at once per process; beyond, 503."
    )
    max_streams_per_user: int = Field(
        default=20,
        ge=1,
        description=(
            "Event streams one user may have open at once per process; beyond, 429. Services "
            "(API keys) are bounded by MAX_STREAMS alone."
        ),
    )
    stream_send_timeout: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Seconds a send to an event stream may wait for a subscriber that stopped reading "
            "before it is disconnected (it resumes with Last-Event-ID)."
        ),
    )
    stream_heartbeat: float = Field(
        default=15.0,
        gt=0,
        description="Seconds between heartbeat comments on a quiet event stream.",
    )
    limit_concurrency: int = Field(
        default=2048,
        ge=1,
        description=(
            "Connections (idle keep-alive ones and event streams included) and requests a "
            "process holds at once; beyond, uvicorn answers 503. Above MAX_STREAMS."
        ),
    )
    graceful_shutdown_timeout: int = Field(
        default=10,
        ge=1,
        description="Seconds after SIGTERM for open requests to finish; then they are cut.",
    )
    thread_wait_timeout: float = Field(
        default=2.0,
        gt=0,
        description=(
            "Seconds a request may wait for a handler thread (and a write for its chat's "
            "turn) before it gets 503."
        ),
    )
    request_timeout: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Seconds a request may take in all before it gets 503; its statement running "
            "then is cancelled."
        ),
    )
    db_statement_timeout: float = Field(
        default=10.0,  # never kept: unset, it is REQUEST_TIMEOUT (_statements_within_requests)
        gt=0,
        description=(
            "Seconds a PostgreSQL statement (a request's, the worker's, the CLI's) may run "
            "before it fails; a request's gets 503. At most REQUEST_TIMEOUT, its default."
        ),
    )
    ready_timeout: float = Field(
        default=2.0, gt=0, description="Seconds /health/ready may take before it answers 503."
    )
    lock_timeout: float = Field(
        default=4.0,
        gt=0,
        description="Seconds a PostgreSQL statement may wait for a lock (a chat's row); then 503.",
    )
    chat_writes_in_flight: int = Field(
        default=2,
        ge=1,
        description=(
            "Posts and deletes of one chat running at once per process; the others wait "
            "for their turn without holding a handler thread."
        ),
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description=(
            "Comma-separated origins (https://app.example.com) whose browser pages may call "
            "the API, or *; empty, no CORS headers at all."
        ),
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1,::1",
        description=(
            "Addresses (or networks, or *) of the proxies whose X-Forwarded-For and "
            "X-Forwarded-Proto uvicorn believes; uvicorn's own default."
        ),
    )

    auth_mode: Literal["none", "required"] = Field(
        default="none",
        description=(
            "none: no credentials asked, every caller may do everything (refused on a "
            "non-loopback HOST unless ALLOW_UNAUTHENTICATED=true); required: every endpoint "
            "but /health and the docs needs Authorization: Bearer <user JWT or API key>."
        ),
    )
    allow_unauthenticated: bool = Field(
        default=False,
        description="Serve AUTH_MODE=none on a non-loopback HOST all the same, on purpose.",
    )
    auth_jwt_secret: SecretStr | None = Field(
        default=None,
        description=(
            "The HS256 secret user tokens are signed with (at least 32 bytes), shared with "
            "the application that mints them. Or AUTH_JWT_SECRET_FILE: a file holding it."
        ),
    )
    auth_jwt_secret_file: Path | None = None
    auth_jwt_audience: str = Field(
        default="chatapi", min_length=1, description="The `aud` every user token must carry."
    )
    auth_jwt_issuer: str | None = Field(
        default=None, description="The `iss` every user token must carry; unset, not checked."
    )
    auth_key_pepper: SecretStr | None = Field(
        default=None,
        description=(
            "The server-side key API keys are hashed with (at least 32 bytes), or "
            "AUTH_KEY_PEPPER_FILE. Unset, one derived from AUTH_JWT_SECRET: set it to rotate "
            "that secret without making every API key invalid."
        ),
    )
    auth_key_pepper_file: Path | None = None

    @model_validator(mode="after")
    def _statements_within_requests(self) -> Self:
        """DB_STATEMENT_TIMEOUT: REQUEST_TIMEOUT when unset, and never above it."""
        if "db_statement_timeout" not in self.model_fields_set:
            self.db_statement_timeout = self.request_timeout
        elif self.db_statement_timeout > self.request_timeout:
            raise ValueError(
                f"DB_STATEMENT_TIMEOUT ({self.db_statement_timeout:g}) must not be above "
                f"REQUEST_TIMEOUT ({self.request_timeout:g}): a request's statement is "
                "cancelled at its deadline; leave it unset to use REQUEST_TIMEOUT"
            )
        return self

    @field_validator("limit_concurrency")
    @classmethod
    def _room_beside_streams(cls, value: int, info: ValidationInfo) -> int:
        streams = info.data.get("max_streams")
        if streams is not None and value <= streams:
            raise ValueError(
                f"must be above MAX_STREAMS ({streams}): each event stream holds a connection"
            )
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        # NoDecode: the environment gives a comma-separated string, not JSON.
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _valid_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(web_origin(origin) for origin in value)

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _valid_proxies(cls, value: str) -> str:
        return trusted_proxies(value)

    @property
    def replica_urls(self) -> tuple[str, ...]:
        """The replicas queries read from (none: they read from DATABASE_URL)."""
        if not self.read_database_url:
            return ()
        urls = replica_urls(self.read_database_url)
        return tuple(url for url in urls if url != self.database_url)

    @field_validator("read_database_url")
    @classmethod
    def _known_read_databases(cls, value: str | None) -> str | None:
        """Kept as given once every URL in it is found valid; empty means unset."""
        if not value or not value.strip():
            return None
        replica_urls(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        return database_url(value)

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        """Secrets from their *_FILE variants (as container secrets are mounted), long
        enough, and there when AUTH_MODE=required needs them."""
        self.auth_jwt_secret = _secret(
            "AUTH_JWT_SECRET", self.auth_jwt_secret, self.auth_jwt_secret_file
        )
        self.auth_key_pepper = _secret(
            "AUTH_KEY_PEPPER", self.auth_key_pepper, self.auth_key_pepper_file
        )
        if self.auth_mode == "required" and self.auth_jwt_secret is None:
            raise ValueError(
                "AUTH_MODE=required needs AUTH_JWT_SECRET (or AUTH_JWT_SECRET_FILE): the secret "
                "user tokens are signed with, at least 32 bytes"
            )
        return self

    @property
    def key_pepper(self) -> bytes | None:
        """What API keys are hashed with: AUTH_KEY_PEPPER, or one derived from
        AUTH_JWT_SECRET (never the secret itself); None when neither is set."""
        if self.auth_key_pepper is not None:
            return self.auth_key_pepper.get_secret_value().encode()
        if self.auth_jwt_secret is None:
            return None
        secret = self.auth_jwt_secret.get_secret_value().encode()
        return hmac.new(secret, b"chatapi api key pepper", hashlib.sha256).digest()


def _secret(name: str, value: SecretStr | None, file: Path | None) -> SecretStr | None:
    """The secret `name` from its variable or its file (a final newline dropped), checked
    for length; never echoed in an error."""
    if value is not None and file is not None:
        raise ValueError(f"set {name} or {name}_FILE, not both")
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"{name}_FILE: cannot read {str(file)!r}: {exc.__class__.__name__}"
            ) from None
        value = SecretStr(text)
    if value is None or value.get_secret_value() == "":
        return None
    if len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"{name} must be at least {MIN_SECRET_BYTES} bytes")
    return value
