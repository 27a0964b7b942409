"""What a bench run measured; saved as docs/benchmarks.json and rendered by bench.report."""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from bench.dataset import Dataset
from bench.procstat import CpuUsage
from bench.wrk import WrkResult


@dataclass
class Measurement:
    """One measured wrk run (after its warm-up run), and what the processes spent on it."""

    name: str
    label: str
    result: WrkResult
    warmup_rps: float
    warmup_requests: int
    cpu: CpuUsage  # over the measured run
    connects_per_s: float  # new connections to PostgreSQL (the service's pools reconnecting)
    rss_kib: int  # the server's, right after the run


@dataclass
class Soak:
    requests: int  # completed between the two readings
    rss_before_kib: int
    rss_after_kib: int
    change_pct: float
    rps: float
    samples: list[tuple[int, int]]  # (requests so far, RSS KiB)
    runs: list[WrkResult]
    cpu: CpuUsage


@dataclass
class Paging:
    """Where the paged reads start: the cursors their wrk runs send, found before the runs."""

    chats: int  # in the chat list when it was walked
    chat_list_depth: int  # chats listed before the deep page
    chat_list_cursor: str  # the `next_cursor` that starts the deep page
    history_chat: int
    history_back: int  # messages newer than the deep page's cursor message
    history_message_id: int  # the deep page is the messages just older than this one
    history_cursor: str  # made by the service's own queries.cursors.encode_history
    paths: dict[str, str]  # endpoint name -> the path and query its wrk run requests


@dataclass
class ProfileSummary:
    samples: int
    top_self: list[tuple[str, float]]  # frame, % of samples in which it was running
    by_package: list[tuple[str, float]]  # package, % of samples in which its code was running
    project: list[tuple[str, float]]  # this project's frames, % of samples on the stack


@dataclass
class Profile:
    name: str
    label: str
    svg: str
    rps: float  # while being profiled (py-spy slows the server down)
    summary: ProfileSummary


@dataclass
class Delivery:
    """From each post's 201, as the poster read it, to its event's arrival on each stream."""

    posts: int  # answered 201 while posting at the steady rate
    rate: float  # posts per second, as achieved
    expected: int  # deliveries: each post once on every stream of its chat
    received: int  # of those, arrived; a missing one counts as infinitely late
    early: int  # arrived before the poster had read its 201: counted as 0 ms
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    late_p99_ms: float  # how far the poster's sends fell behind its schedule
    cpu: CpuUsage  # wrk_pct: the poster; clients_pct: the stream client


@dataclass
class IdleStreams:
    """The server with no stream open, then with every stream open and nothing posted."""

    seconds: float  # each of the two idle windows
    rss_without_kib: int
    rss_with_kib: int
    without: CpuUsage
    with_streams: CpuUsage
    pings: int  # heartbeat comments the streams received in the second window


@dataclass
class FloorStreams:
    """The stream floor (bench/stream_floor.py), pinned as the service: the POST run without
    streams and with the same streams open, and how its events reached the streams."""

    open_s: float  # from starting the stream client until every stream had answered 200
    post_without: Measurement
    post_with: Measurement
    posted_with: int  # messages posted while the streams were open (warm-up and measured)
    expected_with: int  # their events: each once on every stream of its chat
    delivered_with: int  # of those, arrived
    catch_up_s: float  # from the end of those posts until the last of those events arrived


@dataclass
class ManyIdle:
    """BENCH_IDLE_STREAMS streams on a one-worker service of their own, nothing posted."""

    streams: int
    chats: int  # chats 1..chats, the streams spread over them equally
    open_s: float  # from starting the stream client until every stream had answered 200
    idle: IdleStreams  # its `without` window: before the streams were opened
    dropped: int  # streams the server closed while they were open: should be 0


@dataclass
class StuckStream:
    """A subscriber that read the response head, then nothing: what became of it."""

    chat: int
    send_queue_bytes: int  # the server's socket's send queue for it, at its most
    # From the burst's first post until the server's send to it began to wait (stuck_times
    # in bench/stuck_streams.py); None: its send queue never held a byte.
    stuck_after_s: float | None
    # How its close was seen: "server closed" (the server's side of the connection left
    # ESTABLISHED), "reset" or "eof" (on the subscriber's side) while it was not read;
    # "reset after drain", "eof after drain" only once it was read; "open": never.
    closed: str
    closed_after_s: float | None  # from stuck_after_s; None: not seen while it was not read
    drained_after_s: float | None  # from stuck_after_s, when the harness began to read it
    unread_bytes: int  # in its own receive queue then
    drained_bytes: int  # read once it was drained, until it ended or was quiet
    drained_events: int  # message.posted events among them
    last_seq: int | None = None  # the last of them, for one closed after its drain


@dataclass
class NeverReading:
    """Subscribers that never read, beside streams of the same chats that do, on a service of
    their own with a short STREAM_SEND_TIMEOUT; a burst of large posts to their chats."""

    send_timeout_s: float  # STREAM_SEND_TIMEOUT
    chats: int  # chats 1..chats
    readers: int  # streams that read, held by the stream client
    text_bytes: int  # of each post's text
    posts: int  # in each burst, over the chats in turn
    rcvbuf_bytes: int  # SO_RCVBUF of each stuck socket, as the kernel granted it
    tcp_wmem: str  # /proc/sys/net/ipv4/tcp_wmem: min, default, max send buffer
    tcp_rmem: str
    write_high_water_bytes: int  # what uvicorn's transport buffers before a send waits
    rss_control_before_kib: int  # the burst with readers alone, before and after
    rss_control_after_kib: int
    rss_before_kib: int  # the stuck sockets open, before their burst
    rss_stuck_kib: int  # the most while they were stuck
    rss_after_kib: int  # once every stuck socket was closed
    burst_s: float  # the second burst: from its first post to its last 201
    expected: int  # the readers' events of the second burst: each post on each reader
    delivered: int  # of those, arrived
    reader_faults: dict[str, int]  # gaps, duplicates, dropped: should all be 0
    catch_up_s: float  # from the burst's last 201 until the readers' last event
    stuck: list[StuckStream]


@dataclass
class Streams:
    """The event-stream scenarios: one run of them, with its own date and commit (a run with
    BENCH_ONLY=streams adds them to the results of an earlier full run)."""

    started_at: str
    code: dict[str, Any]
    alone: bool  # run with BENCH_ONLY=streams, then put in an earlier full run's results
    streams: int
    chats: int  # chats 1..chats, the streams spread over them equally
    open_s: float  # from starting the stream client until every stream had answered 200
    idle: IdleStreams
    delivery: Delivery
    post_without: Measurement
    post_with: Measurement  # the same run, every stream open
    posted_with: int  # messages posted while the streams were open (warm-up and measured)
    expected_with: int  # their events: each once on every stream of its chat
    delivered_with: int  # of those, arrived
    catch_up_s: float  # from the end of those posts until the last of those events arrived
    dropped: int  # streams the server closed during the scenarios: should be 0
    workers: dict[str, Measurement]  # GET runs, by WORKERS and pinning (the keys below)
    # POST runs on the servers on any CPU, by WORKERS (WORKERS_1, WORKERS_2); empty in the
    # results of runs made before they were measured.
    workers_post: dict[str, Measurement] = field(default_factory=dict)
    # Each None in the results of runs made before it was measured.
    floor: FloorStreams | None = None
    many_idle: ManyIdle | None = None
    never_reading: NeverReading | None = None


# The keys of Streams.workers and Streams.workers_post: the WORKERS setting, and whether the
# server is pinned to a CPU (the one-worker server of the stream scenarios is).
WORKERS_PINNED, WORKERS_1, WORKERS_2 = "1-pinned", "1", "2"


@dataclass
class Turns:
    """One comparison measured in turns in one run (A, B, A, B, ..., A): each side's runs in
    the order measured, each B between two A's (the closing A makes `base` one run longer;
    in results without it, round i of one side is next to round i of the other)."""

    base: list[Measurement]  # A: what the other side is compared with
    other: list[Measurement]  # B


@dataclass
class MakeRun:
    """The service started as `make run` starts it (its request log on, WORKERS at its
    default, stdout to a file as a log collector would take it), pinned as the main runs:
    their GET limit=20 and POST message runs again, in the same run as the floor."""

    workers: int  # WORKERS, at its default
    endpoints: dict[str, Measurement]  # by the name of the main run repeated: "get20", ...
    log_lines: int  # request lines written to stdout over the scenario, warm-ups included
    log_bytes: int
    # By endpoint: base the main service, other this one, in turns (empty in runs before).
    turns: dict[str, Turns] = field(default_factory=dict)


@dataclass
class Latency:
    """One kind of request in a sequential loop, each timed by the client."""

    samples: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class FreshReads:
    """From one client, in turn over the chats: a POST of a message, a GET of its chat with
    the POST's Consistency-Token, and the same GET again at once without one."""

    post: Latency
    with_token: Latency
    without_token: Latency
    waited_out: int  # reads with the token that took REPLICA_WAIT or more: fell back
    stale: int  # reads with the token that did not show their POST: should be 0
    cpu: CpuUsage  # over the timed rounds; wrk_pct: the client (this harness)


@dataclass
class ReadsOn:
    """A service whose reads go to one server: its GET throughput, then its fresh reads."""

    get: Measurement
    fresh: FreshReads


@dataclass
class Replicas:
    """Reads from a streaming standby against reads from the primary, in one run of their
    own (a run with BENCH_ONLY=replicas adds them to the results of an earlier full run)."""

    started_at: str
    code: dict[str, Any]
    alone: bool  # run with BENCH_ONLY=replicas, then put in an earlier full run's results
    database_mb: float  # what pg_basebackup copied
    base_backup_s: float  # from pg_basebackup's start until the standby was streaming
    replication: str  # the primary's pg_stat_replication: state and sync_state
    replica_wait_s: float  # REPLICA_WAIT of the service reading from the standby
    primary_settings: dict[str, str]
    standby_settings: dict[str, str]
    primary: ReadsOn  # READ_DATABASE_URL unset
    standby: ReadsOn  # READ_DATABASE_URL the standby
    total_s: float  # the scenarios in all, the base backup included


@dataclass
class IndexRead:
    """How an EXPLAIN ANALYZE'd statement read the index that serves it."""

    node: str  # "Index Scan Backward", "Index Only Scan", ...
    index: str
    relation: str
    rows: int  # the rows the node returned, over all its loops
    execution_ms: float  # the whole statement's Execution Time
    plan: str  # EXPLAIN (ANALYZE, BUFFERS), as text


@dataclass
class ProjectionCost:
    """A post's per-member projection statement on one chat, EXPLAIN ANALYZE'd repeatedly,
    each time rolled back."""

    chat_id: int
    members: int
    rows: int  # rows the statement updated
    execution_ms: list[float]  # each run's Execution Time, in order
    plan: str  # the last run's plan, as text


@dataclass
class Auth:
    """The identity and access scenarios (bench/auth.py): user tokens against AUTH_MODE=none,
    a user's chat list by how many chats they are in, and a post by how many members its
    chat has; in one run of their own (a run with BENCH_ONLY=auth adds them to the results
    of an earlier full run)."""

    started_at: str
    code: dict[str, Any]
    alone: bool  # run with BENCH_ONLY=auth, then put in an earlier full run's results
    chats: int  # in the database, in all, once the scenarios' chats were added
    added_chats: int  # of those, added by the scenarios (one message each)
    member_rows: int  # chat_member_views' rows, in all
    users: int  # distinct members
    reader_chats: int  # chats the user of the GET and POST comparisons is a member of
    few_chats: int
    many_chats: int
    crowd_members: int  # the crowded chat's members; the pair chat has 2
    load_s: float  # the scenarios' rows: inserted, VACUUM ANALYZEd, CHECKPOINTed
    get20: Turns  # base: AUTH_MODE=none, no header; other: AUTH_MODE=required, a user token
    post_message: Turns  # the same
    chat_list: Turns  # GET /chats/?limit=20: base: the user in few chats; other: in many
    chat_list_short: list[Measurement]  # the user in many chats, limit=few_chats: as many
    # chats in the answer as the few-chats user gets, each run right after that round's pair
    list_loop_few: list[Latency]  # the chat list requested one at a time, a round each
    list_loop_many: list[Latency]
    list_plans: dict[str, IndexRead]  # the user query's plan, "few" and "many"
    post_members: Turns  # POST messages: base: in the 2-member chat; other: the crowded one
    projection: dict[str, ProjectionCost]  # by the chat's members: "2", "1000"
    total_s: float


@dataclass
class LogEvent:
    """One event in PostgreSQL's log (bench/pglog.py)."""

    at: str  # when it was logged, UTC, to the millisecond: "2026-12-07 10:00:00.123"
    kind: str  # checkpoint, lock wait, lock acquired, slow statement, autovacuum, ...
    ms: float  # how long it had lasted when logged (0: a moment)
    text: str  # its message, with its DETAIL and STATEMENT lines, cut short
    pid: int


@dataclass
class LogWindow:
    """What PostgreSQL's log says about one stretch of a scenario."""

    name: str
    started_at: str  # UTC, as LogEvent.at
    ended_at: str
    counts: dict[str, int]  # the events that overlapped it, by kind
    events: list[LogEvent]  # the first few of them
    longest_ms: float  # the longest slow statement or lock wait among them (0: none)


@dataclass
class Waits:
    """What PostgreSQL's client backends were doing, sampled from pg_stat_activity."""

    samples: int  # looks taken, one every WAIT_SAMPLE_S
    active: int  # active backends seen, summed over the looks
    waits: dict[str, int]  # "type:event" ("IO:WALSync") -> backends seen waiting on it, summed


@dataclass
class DeleteLatency:
    """DELETE /chats/{id} timed one at a time by the client, the big chat and small ones in
    turn; the big one's tombstone undone by SQL after each (bench/deletes.py)."""

    big_chat: int
    big_messages: int
    small_messages: int
    big: Latency
    small: Latency
    big_ms: list[float]  # each timed request, in order
    small_ms: list[float]
    statuses: dict[str, int]  # "big 204", "small 204", ...: every timed request's status


@dataclass
class Purge:
    """A big chat deleted while wrk reads other chats, and its purge: the GETs' p99 while the
    purge ran against runs just before and after it."""

    runner: str  # who purged: "in-process" (the server's thread) or "worker"
    batch_size: int  # JOB_BATCH_SIZE
    batch_pause: float  # JOB_BATCH_PAUSE, seconds
    chat_id: int
    messages: int
    delete_status: int
    delete_s: float  # the DELETE, as the client timed it
    finished: bool
    purge_s: float  # from the DELETE's answer until its job was gone (or the wait gave up)
    rows_per_s: float
    before: WrkResult  # the GETs just before the delete
    during: WrkResult  # from just before the delete until just after the purge finished
    after: WrkResult  # just after
    p99_ratio: float  # during's p99 against the mean of before's and after's
    cpu: CpuUsage  # over `during`
    waits: Waits  # over `during`
    progress: list[tuple[float, int]]  # (seconds after the DELETE's answer, seq purged to)


@dataclass
class MixedDelete:
    """The mixed load of many connections, with a big chat deleted part way through."""

    seconds: int
    connections: int
    delete_after_s: float
    chat_id: int
    messages: int
    result: WrkResult  # its `extra` has `status_<code>`: the responses by status
    delete_status: int
    delete_s: float
    purged_after_s: float | None  # from the DELETE's answer; None: not within the run
    purge_s: float | None  # until the purge finished, after the run if need be; None: never
    cpu: CpuUsage
    waits: Waits
    busy: dict[str, int]  # the service's logged 503s, by their detail


@dataclass
class Deletes:
    """The delete scenarios (bench/deletes.py): a big chat's DELETE against small ones', its
    purge under a GET load, and a mixed load with one deleted part way; PostgreSQL's log
    during each. In one run of their own (a run with BENCH_ONLY=delete adds them to the
    results of an earlier full run)."""

    started_at: str
    code: dict[str, Any]
    alone: bool  # run with BENCH_ONLY=delete, then put in an earlier full run's results
    latency: DeleteLatency
    purge: Purge  # the service's defaults
    tunings: list[Purge]  # the same at other JOB_BATCH_SIZE / JOB_BATCH_PAUSE, if measured
    mixed: MixedDelete
    log: list[LogWindow]  # PostgreSQL's log, per stretch of the scenarios
    log_settings: dict[str, str]
    refill_s: list[float]  # each big chat loaded for the scenarios: seconds
    total_s: float


@dataclass
class Results:
    started_at: str
    config: dict[str, Any]
    pinning: dict[str, str | None]  # Pinning's fields (`every` is missing in older runs)
    machine: dict[str, Any]
    code: dict[str, Any]  # the commit measured, and uncommitted changes to the service
    postgres: dict[str, str]
    dataset: Dataset
    floor_body_bytes: int
    endpoints: dict[str, Measurement] = field(default_factory=dict)
    chat_size: dict[str, dict[str, Measurement]] = field(default_factory=dict)
    chat_size_after_posts: dict[str, int] = field(default_factory=dict)  # messages, by size
    get_plans: dict[str, str] = field(default_factory=dict)  # EXPLAIN ANALYZE, by chat size
    paging: Paging | None = None
    soak: Soak | None = None
    profiles: list[Profile] = field(default_factory=list)
    total_s: float = 0.0
    streams: Streams | None = None
    replicas: Replicas | None = None
    make_run: MakeRun | None = None  # None in runs made before it was measured
    auth: Auth | None = None  # None in runs made before it was measured
    deletes: Deletes | None = None  # None in runs made before it was measured
    postgres_log: LogWindow | None = None  # the whole run's; None in runs made before


def save(results: Results, path: Path, **beside: object) -> None:
    """The results as JSON, with `beside`'s keys (the targets' verdicts) next to theirs."""
    raw = {**dataclasses.asdict(results), **beside}
    path.write_text(json.dumps(raw, indent=2, default=str) + "\n")


def load(path: Path) -> Results:
    """Results that save() wrote, nested dataclasses and all; the keys beside them are ignored."""
    return TypeAdapter(Results).validate_json(path.read_bytes())
