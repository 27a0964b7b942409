"""The identity and access scenarios: what AUTH_MODE=required, and per-member rows, cost.

Chats and members are added to the run's database first, with set-based SQL, as the
service would have left them: the write model's chats (one message each) and chat_members,
and the read models' chat_views and chat_member_views (one row per member, at its chat's
last activity). Up to TOTAL_CHATS chats in all, activity spread over a year:

    the pair chat      2 members: READER and one other
    the crowded chat   CROWD_MEMBERS members: READER and the others
    every other one    2 members of BACKGROUND_USERS users; FEW in FEW_CHATS of them and
                       MANY in MANY_CHATS, spread evenly
    chats 1..1000      the dataset's (bench/dataset.py): READER is a member of each

Then two services of their own, both up at once and pinned as the others (`chatapi serve`,
one worker, on the server's CPU), with the same settings but one: AUTH_MODE=none and
AUTH_MODE=required, AUTH_JWT_SECRET a random secret of this run given to both. The idle one
reads the hints each POST sends to every process: its CPU is counted apart (`clients_pct`).
Each comparison is measured in turns (A, B, A, B, ..., A) for BENCH_AUTH_ROUNDS rounds,
each wrk run after its own warm-up, since the machine drifts more between minutes than
between two runs in a row; each B is compared with the mean of the two A's around it, so a
steady drift cancels:

1. first, while neither service has served anything else: GET /chats/{id}?limit=20, then
   POST /chats/{id}/messages/, over chats 1..1000: on the AUTH_MODE=none service without a
   header, then on the other with READER's token; where the token's side misses its
   target, both services are profiled under the same load;
2. GET /chats/?limit=20 on the AUTH_MODE=required service as FEW, then as MANY (and as MANY
   with limit=FEW_CHATS, as many chats in the answer as FEW gets), with wrk; then the same
   requests one at a time from this process; and EXPLAIN ANALYZE of the service's own user
   query (queries/list_chats.py) for each, before the runs;
3. POST /chats/{id}/messages/ as READER in the pair chat, then in the crowded one, after
   EXPLAIN ANALYZE of the per-member projection statement (infrastructure/projections.py)
   on each, PROJECTION_RUNS times, each rolled back.

The users' chats are not among READER's: the posts of 1 do not move them.

Tokens are HS256 JWTs as the users' application would mint them; wrk sends one in every
request's Authorization header (bench/lua/common.lua), from its environment.
"""

import gc
import json
import re
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from sqlalchemy import Connection, Engine, text
from sqlalchemy.sql import ClauseElement

from bench import machine, profile, server
from bench.config import BenchConfig, BenchError, Pinning
from bench.dataset import CHAT_COUNT, EPOCH
from bench.procstat import QuietWaiter
from bench.replicas import Client, latency
from bench.results import Auth, IndexRead, Latency, Measurement, Profile, ProjectionCost, Turns
from bench.scenarios import ALL_CHATS, Bench, DeletePool, log
from bench.server import ROOT, Server
from bench.targets import (
    AUTH_SHARE,
    CHAT_LIST_SPREAD,
    median_ratio,
    p50,
    rps,
    spread,
    turn_ratios,
)
from bench.wrk import WrkSetup
from infrastructure.projections import MOVE_FOR_MEMBERS, PREVIEW_LENGTH
from queries.list_chats import MINE_FIRST

TOTAL_CHATS = 100_000
FEW_CHATS = 10
MANY_CHATS = 10_000
CROWD_MEMBERS = 1_000
PAIR_MEMBERS = 2
BACKGROUND_USERS = 25_000
READER, FEW, MANY = "bench-reader", "bench-few", "bench-many"
SPAN_S = 365 * 24 * 3600  # the added chats' activity, spread over a year from EPOCH
AUDIENCE = "chatapi"
TOKEN_TTL = timedelta(hours=12)
PAGE = 20
WARM_REQUESTS = 50  # untimed requests before each loop: the connection and code paths warm
PROJECTION_RUNS = 25
MEMBER_VIEWS = "chat_member_views"
EXECUTION_TIME = re.compile(r"^Execution Time: ([0-9.]+) ms$", re.MULTILINE)
# The profiles these scenarios may take: an auth-only run replaces the saved ones.
# With a token, then the baseline: the same load on the AUTH_MODE=none service.
PROFILES_GET = ("auth-get20", "auth-get20-none")
PROFILES_POST = ("auth-post-message", "auth-post-message-none")
PROFILE_LIST = "auth-chat-list"
PROFILE_NAMES = (*PROFILES_GET, *PROFILES_POST, PROFILE_LIST)


@dataclass(frozen=True)
class Layout:
    """Where the added chats are: ids first..last, the pair chat, the crowded one, then the
    chats the users' memberships are spread over."""

    first: int
    last: int

    @property
    def pair(self) -> int:
        return self.first

    @property
    def crowd(self) -> int:
        return self.first + 1

    @property
    def spread_first(self) -> int:
        return self.first + 2

    def step(self, count: int) -> int:
        """Every how many spread chats a user in `count` of them is a member."""
        return (self.last - self.spread_first + 1) // count

    def chats_of(self, count: int) -> range:
        """The chats of a user in `count` of the spread chats."""
        step = self.step(count)
        return range(self.spread_first, self.spread_first + step * count, step)


def layout(chats: int, highest_id: int, total: int = TOTAL_CHATS) -> Layout:
    """The chats to add after `highest_id` for `total` chats in all (`chats` now), and never
    fewer than MANY_CHATS spread ones."""
    added = max(total - chats, MANY_CHATS + 2)
    return Layout(highest_id + 1, highest_id + added)


def user_token(secret: str, user: str, now: datetime) -> str:
    """A user token as the users' application mints one (api/auth.py checks it)."""
    claims = {"sub": user, "aud": AUDIENCE, "exp": int((now + TOKEN_TTL).timestamp())}
    return jwt.encode(claims, secret, algorithm="HS256")


def scan_of(node: dict[str, Any], relation: str) -> dict[str, Any] | None:
    """The first scan of `relation` in an EXPLAIN (FORMAT JSON) plan node, depth first."""
    if node.get("Relation Name") == relation and node.get("Node Type", "").endswith("Scan"):
        return node
    for child in node.get("Plans", []):
        found = scan_of(child, relation)
        if found is not None:
            return found
    return None


def index_read(explained: list[dict[str, Any]], relation: str, plan: str) -> IndexRead:
    """How the statement EXPLAIN (ANALYZE, FORMAT JSON) gave `explained` for read
    `relation`: its scan node, the index (a bitmap scan's from its child), the rows."""
    top = explained[0]
    node = scan_of(top["Plan"], relation)
    if node is None:
        return IndexRead("no scan", "", relation, 0, float(top["Execution Time"]), plan)
    index = node.get("Index Name") or next(
        (child.get("Index Name", "") for child in node.get("Plans", [])), ""
    )
    rows = int(node.get("Actual Rows", 0) * node.get("Actual Loops", 1))
    kind = node["Node Type"] + (" Backward" if node.get("Scan Direction") == "Backward" else "")
    return IndexRead(kind, index, relation, rows, float(top["Execution Time"]), plan)


# --- the data --------------------------------------------------------------------------------

SPREAD_TIME = f"timestamptz :epoch + (c * 48271 % 2147483647 % {SPAN_S}) * interval '1 second'"
ADD_CHATS = text(
    f"""
    INSERT INTO chats (id, title, created_at, last_seq, last_message_at)
    SELECT c, 'Auth benchmark chat ' || c, at - interval '1 hour', 1, at
    FROM (SELECT c, {SPREAD_TIME} AS at
          FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS c) AS spread
    """
)
ADD_MESSAGES = text(
    """
    INSERT INTO messages (chat_id, seq, text, created_at)
    SELECT id, 1, 'Auth benchmark message in chat ' || id || ': the quick brown fox jumps.',
           last_message_at
    FROM chats WHERE id BETWEEN :first AND :last
    """
)
ADD_CHAT_VIEWS = text(
    f"""
    INSERT INTO chat_views (chat_id, title, created_at, message_count, last_message_at,
                            last_activity_at, last_message_preview, last_seq)
    SELECT c.id, c.title, c.created_at, 1, c.last_message_at, c.last_message_at,
           substr(m.text, 1, {PREVIEW_LENGTH}), 1
    FROM chats AS c JOIN messages AS m ON m.chat_id = c.id
    WHERE c.id BETWEEN :first AND :last
    """
)
# Two members each: (7 * id + 1) and id are never equal modulo an even number of users.
ADD_BACKGROUND = text(
    f"""
    INSERT INTO chat_members (chat_id, user_id, role, added_at)
    SELECT id, 'user-' || (id % {BACKGROUND_USERS}), 'owner', created_at
    FROM chats WHERE id BETWEEN :first AND :last
    UNION ALL
    SELECT id, 'user-' || ((7 * id + 1) % {BACKGROUND_USERS}), 'member', created_at
    FROM chats WHERE id BETWEEN :first AND :last
    """
)
ADD_SPREAD_USER = text(
    """
    INSERT INTO chat_members (chat_id, user_id, role, added_at)
    SELECT id, :user, 'member', created_at FROM chats
    WHERE id BETWEEN :first AND :last AND (id - :first) % :step = 0
    """
)
ADD_READER = text(
    """
    INSERT INTO chat_members (chat_id, user_id, role, added_at)
    SELECT id, :user, 'member', created_at FROM chats
    WHERE id BETWEEN 1 AND :chat_count OR id IN (:pair, :crowd)
    """
)
ADD_OTHERS = text(
    """
    INSERT INTO chat_members (chat_id, user_id, role, added_at)
    SELECT :chat, :prefix || n, 'member', (SELECT created_at FROM chats WHERE id = :chat)
    FROM generate_series(1, CAST(:count AS integer)) AS n
    """
)
# As the projections leave them: each member's row at its chat's last activity.
ADD_MEMBER_VIEWS = text(
    """
    INSERT INTO chat_member_views (chat_id, user_id, role, added_at, last_activity_at)
    SELECT m.chat_id, m.user_id, m.role, m.added_at, v.last_activity_at
    FROM chat_members AS m JOIN chat_views AS v ON v.chat_id = m.chat_id
    ON CONFLICT DO NOTHING
    """
)
COUNTS = text(
    "SELECT (SELECT count(*) FROM chats), (SELECT count(*) FROM chat_member_views), "
    "(SELECT count(DISTINCT user_id) FROM chat_member_views)"
)
MEMBERS = text("SELECT count(*) FROM chat_member_views WHERE user_id = :user")


@dataclass(frozen=True)
class Loaded:
    layout: Layout
    chats: int
    member_rows: int
    users: int
    reader_chats: int
    seconds: float


def load(engine: Engine) -> Loaded:
    """The scenarios' chats and members, added after the database's highest chat id."""
    started = time.perf_counter()
    with engine.begin() as connection:
        chats, highest = connection.execute(text("SELECT count(*), max(id) FROM chats")).one()
        where = layout(int(chats), int(highest or 0))
        # Every row is consistent by construction: skip the per-row foreign-key triggers.
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        span = {"first": where.first, "last": where.last}
        connection.execute(ADD_CHATS, {**span, "epoch": EPOCH})
        connection.execute(ADD_MESSAGES, span)
        connection.execute(ADD_CHAT_VIEWS, span)
        connection.execute(ADD_BACKGROUND, {"first": where.spread_first, "last": where.last})
        for user, count in ((FEW, FEW_CHATS), (MANY, MANY_CHATS)):
            spread_params = {"first": where.spread_first, "last": where.chats_of(count)[-1]}
            step = where.step(count)
            connection.execute(ADD_SPREAD_USER, {**spread_params, "user": user, "step": step})
        params = {"user": READER, "chat_count": CHAT_COUNT, "pair": where.pair}
        connection.execute(ADD_READER, {**params, "crowd": where.crowd})
        for chat, prefix, members in (
            (where.pair, "pair-", PAIR_MEMBERS),
            (where.crowd, "crowd-", CROWD_MEMBERS),
        ):
            connection.execute(ADD_OTHERS, {"chat": chat, "prefix": prefix, "count": members - 1})
        connection.execute(ADD_MEMBER_VIEWS)
        connection.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('chats', 'id'), (SELECT max(id) FROM chats))"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(
            text("VACUUM ANALYZE chats, messages, chat_views, chat_members, chat_member_views")
        )
        connection.execute(text("CHECKPOINT"))
        total, rows, users = connection.execute(COUNTS).one()
        counts = {
            user: int(connection.scalar(MEMBERS, {"user": user}) or 0)
            for user in (READER, FEW, MANY)
        }
    if counts[FEW] != FEW_CHATS or counts[MANY] != MANY_CHATS:
        raise BenchError(f"the users' chats were not loaded as meant: {counts}")
    seconds = time.perf_counter() - started
    return Loaded(where, int(total), int(rows), int(users), counts[READER], seconds)


# --- plans -----------------------------------------------------------------------------------


def explain(
    connection: Connection, statement: ClauseElement, params: dict[str, Any], as_json: bool
) -> Any:
    """EXPLAIN (ANALYZE, BUFFERS) of one of the service's own statements: the plan as
    PostgreSQL's JSON, or as its text."""
    compiled = statement.compile(dialect=connection.dialect)
    values = compiled.construct_params(params)
    options = "ANALYZE, BUFFERS, FORMAT JSON" if as_json else "ANALYZE, BUFFERS"
    rows = connection.exec_driver_sql(f"EXPLAIN ({options}) {compiled}", values).all()
    return rows[0][0] if as_json else "\n".join(row[0] for row in rows)


def execution_ms(plan: str) -> float | None:
    """The Execution Time of an EXPLAIN ANALYZE's text, in ms (None if it has none)."""
    found = EXECUTION_TIME.search(plan)
    return float(found[1]) if found else None


def list_plan(engine: Engine, user: str) -> IndexRead:
    """The user query of GET /chats/?limit=20 (its first page), as the service sends it:
    its scan from the JSON plan, its time from the text plan shown beside it."""
    params = {"viewer": user, "limit": PAGE + 1}
    with engine.connect() as connection:
        explained = explain(connection, MINE_FIRST, params, as_json=True)
        plan = explain(connection, MINE_FIRST, params, as_json=False)
    read = index_read(explained, MEMBER_VIEWS, plan)
    return replace(read, execution_ms=execution_ms(plan) or read.execution_ms)


def projection_costs(engine: Engine, chats: dict[int, int], runs: int) -> dict[str, ProjectionCost]:
    """The per-member projection statement of a post on each chat (by its members), in
    turns, each run rolled back."""
    samples: dict[int, list[float]] = {chat: [] for chat in chats}
    found: dict[int, IndexRead] = {}
    with engine.connect() as connection:
        for index in range(runs + 1):
            for chat in chats:
                params = {"chat": chat, "at": datetime.now(UTC)}
                with connection.begin() as transaction:
                    if index == runs:  # the last, as text, for the report
                        plan = explain(connection, MOVE_FOR_MEMBERS, params, as_json=False)
                        found[chat] = replace(found[chat], plan=plan)
                    else:
                        explained = explain(connection, MOVE_FOR_MEMBERS, params, as_json=True)
                        found[chat] = index_read(explained, MEMBER_VIEWS, "")
                        samples[chat].append(found[chat].execution_ms)
                    transaction.rollback()
    return {
        str(members): ProjectionCost(
            chat_id=chat,
            members=members,
            rows=found[chat].rows,
            execution_ms=samples[chat],
            plan=found[chat].plan,
        )
        for chat, members in chats.items()
    }


# --- the runs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a wrk script and its arguments on one service, as one user."""

    runner: Bench
    name: str
    label: str
    script: str
    args: list[str]

    def measure(self) -> Measurement:
        return self.runner.measure(self.name, self.label, self.script, self.args)


def in_turns(rounds: int, base: Side, other: Side) -> Turns:
    """base, other, base, other, ..., base: `rounds` runs of `other`, each between two of
    `base`."""
    turns = Turns([], [])
    for round_ in range(1, rounds + 1):
        log(f"auth: round {round_} of {rounds}")
        turns.base.append(base.measure())
        turns.other.append(other.measure())
    turns.base.append(base.measure())  # the closing run
    return turns


def _ratio_line(what: str, turns: Turns, value: Callable[[Measurement], float]) -> str:
    rounds = ", ".join(f"{r:.2f}" for r in turn_ratios(turns, value))
    return f"{what}: median {median_ratio(turns, value):.2f}x (rounds {rounds})"


@dataclass
class AuthBench:
    """What the identity and access scenarios need of the run: its config, wrk, PostgreSQL,
    CPUs, files."""

    config: BenchConfig
    setup: WrkSetup
    database_url: str
    postmaster_pid: int
    pinning: Pinning
    pool: DeletePool  # its engine; no chat of it is deleted here
    quiet: QuietWaiter
    work: Path
    docs: Path

    def run(self) -> tuple[Auth, list[Profile]]:
        started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        began = time.monotonic()
        code = machine.code_version(ROOT)
        engine = self.pool.engine
        log("auth: adding the chats and members of the identity and access scenarios")
        loaded = load(engine)
        log(
            f"auth: {loaded.chats:,} chats in all, {loaded.member_rows:,} member rows of "
            f"{loaded.users:,} users, loaded in {loaded.seconds:.1f} s"
        )
        secret = secrets.token_urlsafe(48)  # 64 characters: above the 32 bytes asked
        with ExitStack() as stack:
            open_ = self._service("none", secret, stack)
            closed = self._service("required", secret, stack)
            try:
                auth, profiles = self._scenarios(loaded, open_, closed, secret)
            except BaseException:
                for service in (open_, closed):
                    print(
                        f"--- {service.name} log (tail) ---\n{service.log_tail()}", file=sys.stderr
                    )
                raise
        auth.started_at, auth.code = started_at, code
        auth.total_s = time.monotonic() - began
        log(f"auth: done in {auth.total_s:.0f} s")
        return auth, profiles

    def _service(self, mode: str, secret: str, stack: ExitStack) -> Server:
        settings = {"AUTH_MODE": mode, "AUTH_JWT_SECRET": secret, "AUTH_JWT_AUDIENCE": AUDIENCE}
        service = server.start_service(
            self.database_url, self.pinning.server, self.work, settings=settings
        )
        service.name += f" (AUTH_MODE={mode})"
        stack.callback(service.stop)
        return service

    def _runner(self, service: Server, idle: Server, authorization: str | None) -> Bench:
        setup = replace(self.setup, authorization=authorization)
        runner = Bench(self.config, setup, service, self.postmaster_pid, self.pool, self.quiet)
        runner.meter.client_pids.append(idle.pid)  # the other service, idle: see above
        return runner

    def _scenarios(
        self, loaded: Loaded, open_: Server, closed: Server, secret: str
    ) -> tuple[Auth, list[Profile]]:
        now = datetime.now(UTC)
        bearer = {user: f"Bearer {user_token(secret, user, now)}" for user in (READER, FEW, MANY)}
        _check(closed.url, None, "/chats/1?limit=20", 401)
        _check(closed.url, bearer[READER], "/chats/1?limit=20", 200)
        _check(open_.url, None, "/chats/1?limit=20", 200)
        rounds, engine, where = self.config.auth_rounds, self.pool.engine, loaded.layout
        as_reader = self._runner(closed, open_, bearer[READER])
        unauthenticated = self._runner(open_, closed, None)

        # First, while neither service has served anything else: the same past for both.
        get20 = in_turns(
            rounds,
            Side(
                unauthenticated,
                "auth_get20_none",
                "GET /chats/{id}?limit=20, AUTH_MODE=none",
                "get.lua",
                [*ALL_CHATS, "20"],
            ),
            Side(
                as_reader,
                "auth_get20_token",
                "GET /chats/{id}?limit=20, user token",
                "get.lua",
                [*ALL_CHATS, "20"],
            ),
        )
        log("auth: " + _ratio_line("GET with a token against none, requests/s", get20, rps))
        post = in_turns(
            rounds,
            Side(
                unauthenticated,
                "auth_post_message_none",
                "POST /chats/{id}/messages/, AUTH_MODE=none",
                "post_message.lua",
                ALL_CHATS,
            ),
            Side(
                as_reader,
                "auth_post_message_token",
                "POST /chats/{id}/messages/, user token",
                "post_message.lua",
                ALL_CHATS,
            ),
        )
        log("auth: " + _ratio_line("POST with a token against none, requests/s", post, rps))
        # A missed throughput target: both services profiled under the same load, the
        # AUTH_MODE=none one as the baseline the other is compared with.
        profiles: list[Profile] = []
        for names, what, turns, script, args in (
            (PROFILES_GET, "GET /chats/{id}?limit=20", get20, "get.lua", [*ALL_CHATS, "20"]),
            (PROFILES_POST, "POST /chats/{id}/messages/", post, "post_message.lua", ALL_CHATS),
        ):
            missed = median_ratio(turns, rps) < AUTH_SHARE
            for name, runner, how in zip(
                names, (as_reader, unauthenticated), ("user token", "AUTH_MODE=none"), strict=True
            ):
                profiles += self._profile_missed(
                    name, f"{what}, {how}", missed, runner.service, runner.setup, script, args
                )

        chat_list, short, loops, plans = self._chat_lists(closed, open_, bearer)
        profiles += self._profile_missed(
            PROFILE_LIST,
            f"GET /chats/?limit={PAGE}, user in {MANY_CHATS:,} chats",
            spread(median_ratio(chat_list, p50)) > CHAT_LIST_SPREAD,
            closed,
            self._runner(closed, open_, bearer[MANY]).setup,
            "get_page.lua",
            [f"/chats/?limit={PAGE}"],
        )

        log(f"auth: EXPLAIN ANALYZE of the projection statement, {PROJECTION_RUNS} times each")
        chats = {where.pair: PAIR_MEMBERS, where.crowd: CROWD_MEMBERS}
        projection = projection_costs(engine, chats, PROJECTION_RUNS)
        for cost in projection.values():
            log(
                f"auth: projection on the {cost.members:,}-member chat: {cost.rows:,} rows, "
                f"median {statistics.median(cost.execution_ms):.3f} ms"
            )
        post_members = in_turns(
            rounds,
            Side(
                as_reader,
                "auth_post_pair",
                f"POST in the {PAIR_MEMBERS}-member chat",
                "post_message.lua",
                [str(where.pair), str(where.pair)],
            ),
            Side(
                as_reader,
                "auth_post_crowd",
                f"POST in the {CROWD_MEMBERS:,}-member chat",
                "post_message.lua",
                [str(where.crowd), str(where.crowd)],
            ),
        )
        log(
            "auth: " + _ratio_line("POST, crowded chat against pair, requests/s", post_members, rps)
        )
        auth = Auth(
            started_at="",
            code={},
            alone=self.config.only == "auth",
            chats=loaded.chats,
            added_chats=where.last - where.first + 1,
            member_rows=loaded.member_rows,
            users=loaded.users,
            reader_chats=loaded.reader_chats,
            few_chats=FEW_CHATS,
            many_chats=MANY_CHATS,
            crowd_members=CROWD_MEMBERS,
            load_s=loaded.seconds,
            get20=get20,
            post_message=post,
            chat_list=chat_list,
            chat_list_short=short,
            list_loop_few=loops[FEW],
            list_loop_many=loops[MANY],
            list_plans=plans,
            post_members=post_members,
            projection=projection,
            total_s=0.0,
        )
        return auth, profiles

    def _chat_lists(
        self, closed: Server, open_: Server, bearer: dict[str, str]
    ) -> tuple[Turns, list[Measurement], dict[str, list[Latency]], dict[str, IndexRead]]:
        """GET /chats/?limit=20 as FEW and as MANY, in turns: wrk, then one at a time."""
        path, short_path = f"/chats/?limit={PAGE}", f"/chats/?limit={FEW_CHATS}"
        for user, count in ((FEW, FEW_CHATS), (MANY, PAGE)):
            _check(closed.url, bearer[user], path, 200, chats=count)
        plans = {"few": list_plan(self.pool.engine, FEW), "many": list_plan(self.pool.engine, MANY)}
        for which, read in plans.items():
            log(
                f"auth: chat list plan, user in {which} chats: {read.node} on {read.index}, "
                f"{read.rows} rows, {read.execution_ms:.3f} ms"
            )
        few = Side(
            self._runner(closed, open_, bearer[FEW]),
            "auth_chat_list_few",
            f"GET /chats/?limit={PAGE}, user in {FEW_CHATS:,} chats",
            "get_page.lua",
            [path],
        )
        many_runner = self._runner(closed, open_, bearer[MANY])
        many = Side(
            many_runner,
            "auth_chat_list_many",
            f"GET /chats/?limit={PAGE}, user in {MANY_CHATS:,} chats",
            "get_page.lua",
            [path],
        )
        many_short = Side(
            many_runner,
            "auth_chat_list_many_short",
            f"GET /chats/?limit={FEW_CHATS}, user in {MANY_CHATS:,} chats",
            "get_page.lua",
            [short_path],
        )
        turns, short = Turns([], []), []
        loops: dict[str, list[Latency]] = {FEW: [], MANY: []}
        rounds = self.config.auth_rounds
        for round_ in range(1, rounds + 1):
            log(f"auth: chat list, round {round_} of {rounds}")
            turns.base.append(few.measure())
            turns.other.append(many.measure())
            short.append(many_short.measure())
            for user in (FEW, MANY):
                loops[user].append(
                    one_at_a_time(closed.url, bearer[user], path, self.config.list_requests)
                )
            log(
                f"auth: one at a time, p50 {loops[FEW][-1].p50_ms:.2f} ms in {FEW_CHATS} "
                f"chats, {loops[MANY][-1].p50_ms:.2f} ms in {MANY_CHATS:,}"
            )
        turns.base.append(few.measure())  # the closing run
        ratio = median_ratio(turns, p50)
        verdict = "met" if spread(ratio) <= CHAT_LIST_SPREAD else "MISSED"
        log("auth: " + _ratio_line("chat list p50, many against few", turns, p50) + f" {verdict}")
        return turns, short, loops, plans

    def _profile_missed(
        self,
        name: str,
        label: str,
        missed: bool,
        service: Server,
        setup: WrkSetup,
        script: str,
        args: list[str],
    ) -> list[Profile]:
        """py-spy on the service under this load, if its target is missed (and BENCH_PROFILE
        is on)."""
        if not missed or not self.config.profile:
            return []
        log(f"auth: target missed; profiling {label}")
        found = profile.record(name, label, service, setup, script, args, self.docs)
        return [found] if found else []


def _check(
    url: str, authorization: str | None, path: str, status: int, chats: int | None = None
) -> None:
    """One request, which must answer `status` (and list `chats` chats)."""
    client = Client(url)
    try:
        headers = {"Authorization": authorization} if authorization else {}
        answer = client.send("GET", path, headers=headers)
    finally:
        client.close()
    who = "with a token" if authorization else "without a token"
    if answer.status != status:
        raise BenchError(f"GET {path} {who} answered {answer.status}: {answer.body[:200]!r}")
    if chats is not None:
        listed = len(json.loads(answer.body)["chats"])
        if listed != chats:
            raise BenchError(f"GET {path} {who} listed {listed} chats, not {chats}")


def one_at_a_time(url: str, authorization: str, path: str, requests: int) -> Latency:
    """`requests` GETs of `path`, one at a time on one keep-alive connection, each timed."""
    client = Client(url)
    headers = {"Authorization": authorization}
    # A collection in this process would land in some request's time: none meanwhile.
    gc.disable()
    try:
        for _ in range(WARM_REQUESTS):
            client.send("GET", path, headers=headers)
        seconds = []
        for _ in range(requests):
            answer = client.send("GET", path, headers=headers)
            if answer.status != 200:
                raise BenchError(f"GET {path} answered {answer.status}: {answer.body[:200]!r}")
            seconds.append(answer.seconds)
    finally:
        gc.enable()
        client.close()
    return latency(seconds)
