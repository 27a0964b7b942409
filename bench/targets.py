"""The targets the service is held to, and whether a run met them (reported, not asserted)."""

import itertools
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from bench.config import BenchConfig
from bench.dataset import BIG_CHAT_MESSAGES, SMALL_CHAT_MESSAGES
from bench.paging import CHATS_FIRST, HISTORY_BACK, HISTORY_DEEP, HISTORY_NEWEST
from bench.procstat import CpuUsage
from bench.results import (
    WORKERS_1,
    WORKERS_2,
    Auth,
    DeleteLatency,
    Deletes,
    Delivery,
    Measurement,
    MixedDelete,
    Purge,
    Results,
    Streams,
    Turns,
)
from bench.wrk import WrkResult

DELIVERY_P99_MS = 50.0  # from a post's 201 to its event on every stream of its chat
POST_WITH_STREAMS = 0.85  # POST throughput with every stream open, against none open
CPU_PER_EVENT = 1.5  # the server's CPU per delivered event, against the stream floor's
WORKERS_SCALING = 1.6  # throughput with WORKERS=2 against one worker, the same PostgreSQL
MAKE_RUN_SHARE = 0.9  # the share of the floor as `make run` serves, against the main run's
AUTH_SHARE = 0.9  # throughput with a user token, against the same run with AUTH_MODE=none
CHAT_LIST_SPREAD = 1.2  # chat-list p50 of a user in many chats and of one in few: within
# The delete targets (issue 23), and the scenarios they name (bench/deletes.py).
DELETE_SPREAD = 2.0  # the big chat's DELETE p50 against a 3-message chat's: within
DELETE_P50_MS = 50.0  # and at most
PURGE_P99 = 1.5  # other chats' GET p99 while a big chat is purged, against without: at most
MIXED_SECONDS = 60  # the mixed load's length
MIXED_CONNECTIONS = 64
MIXED_DELETE_AT_S = 20.0  # the big chat's DELETE is sent this far into it
MIXED_DELETE_S = 0.25  # and answered within
# The main runs that the `make run` scenario repeats: endpoint, and what the target calls it.
MAKE_RUN_ENDPOINTS = {"get20": "GET limit=20", "post_message": "POST messages"}


@dataclass
class Target:
    key: str
    goal: str
    measured: str
    passed: bool | None  # None: not measured (yet)
    profile: tuple[str, str, list[str]] | None = None  # what to py-spy on a miss

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "n/a"}[self.passed]


def _ratio(
    key: str, goal: str, value: float | None, check: Callable[[float], bool], fmt: str = "{:.2f}x"
) -> Target:
    if value is None or math.isnan(value):
        return Target(key, goal, "not measured", None)
    return Target(key, goal, fmt.format(value), check(value))


def delivery_met(delivery: Delivery) -> bool:
    """Every event arrived, and 99% of them within DELIVERY_P99_MS."""
    return delivery.received == delivery.expected and delivery.p99_ms <= DELIVERY_P99_MS


def post_ratio(without: Measurement, with_streams: Measurement) -> float:
    return with_streams.result.rps / without.result.rps


def cpu_per_request(m: Measurement) -> float:
    """Server CPU-seconds per request of a measured run."""
    return m.cpu.server_pct / 100 * m.result.duration_s / m.result.requests


def cpu_per_event(
    without: Measurement, with_streams: Measurement, posts: int, events: int
) -> float:
    """Server CPU-seconds per delivered event: what a post costs the server more with the
    streams open than without, times the posts, over the events they were delivered as.
    NaN when no event was delivered."""
    if events == 0:
        return math.nan
    return (cpu_per_request(with_streams) - cpu_per_request(without)) * posts / events


def event_cpus(streams: Streams) -> tuple[float, float] | None:
    """The service's and the floor's server CPU-seconds per delivered event, the same run."""
    floor = streams.floor
    if floor is None:
        return None
    service = cpu_per_event(
        streams.post_without, streams.post_with, streams.posted_with, streams.delivered_with
    )
    bare = cpu_per_event(
        floor.post_without, floor.post_with, floor.posted_with, floor.delivered_with
    )
    return service, bare


def _event_cpu(streams: Streams | None) -> Target:
    count = streams.streams if streams else BenchConfig().streams
    goal = (
        f"server CPU per delivered event, {count:,} streams open, ≤ {CPU_PER_EVENT}x the "
        "bare-ASGI stream floor's"
    )
    cpus = event_cpus(streams) if streams else None
    if cpus is None or any(math.isnan(v) for v in cpus):
        return Target("event_cpu", goal, "not measured", None)
    service, bare = cpus
    if bare <= 0:
        return Target("event_cpu", goal, f"{1e6 * service:.1f} µs; the floor's ≤ 0", None)
    ratio = service / bare
    measured = (
        f"{ratio_text(ratio, CPU_PER_EVENT)} ({1e6 * service:.1f} µs against {1e6 * bare:.1f} µs)"
    )
    return Target("event_cpu", goal, measured, ratio <= CPU_PER_EVENT)


def _streams(streams: Streams | None) -> list[Target]:
    count = streams.streams if streams else BenchConfig().streams
    latency_goal = f"event delivery p99, {count:,} streams, ≤ {DELIVERY_P99_MS:g} ms after the 201"
    post_goal = f"POST messages with {count:,} streams open ≥ {POST_WITH_STREAMS}x none open"
    if streams is None:
        return [
            Target("delivery_p99", latency_goal, "not measured", None),
            Target("post_streams", post_goal, "not measured", None),
        ]
    delivery = streams.delivery
    measured = f"{delivery.p99_ms:.1f} ms (p50 {delivery.p50_ms:.1f} ms)"
    if delivery.received < delivery.expected:
        measured += f", {delivery.expected - delivery.received:,} never arrived"
    return [
        Target("delivery_p99", latency_goal, measured, delivery_met(delivery)),
        _ratio(
            "post_streams",
            post_goal,
            post_ratio(streams.post_without, streams.post_with),
            lambda v: v >= POST_WITH_STREAMS,
        ),
    ]


def cpu_split(cpu: CpuUsage) -> str:
    """Where a run's CPU went, in % of one core: what shares the cores with the server."""
    return (
        f"server {cpu.server_pct:.0f}%, PostgreSQL {cpu.postgres_pct:.0f}%, "
        f"wrk {cpu.wrk_pct:.0f}%, other {cpu.other_pct:.0f}%"
    )


def workers_ratio(runs: dict[str, Measurement]) -> float | None:
    """WORKERS=2's throughput against WORKERS=1's, both servers on any CPU."""
    if WORKERS_1 not in runs or WORKERS_2 not in runs:
        return None
    return runs[WORKERS_2].result.rps / runs[WORKERS_1].result.rps


def _workers(streams: Streams | None) -> list[Target]:
    """GET and POST with WORKERS=2 against one worker; the CPU of the two-worker run beside,
    since on two cores PostgreSQL and wrk take their share of the second worker's core."""
    targets = []
    for key, what, runs in (
        ("workers_get", "GET limit=20", streams.workers if streams else {}),
        ("workers_post", "POST messages", streams.workers_post if streams else {}),
    ):
        goal = f"{what} with WORKERS=2 ≥ {WORKERS_SCALING}x WORKERS=1, same PostgreSQL"
        ratio = workers_ratio(runs)
        if ratio is None:
            targets.append(Target(key, goal, "not measured", None))
            continue
        measured = f"{ratio:.2f}x (CPU with WORKERS=2: {cpu_split(runs[WORKERS_2].cpu)})"
        targets.append(Target(key, goal, measured, ratio >= WORKERS_SCALING))
    return targets


def make_run_shares(results: Results, name: str) -> tuple[float, float, float] | None:
    """Endpoint `name` as `make run` serves it against the main run: the ratio of their shares
    of the floor (of their throughputs: the floor is the same), and the two shares."""
    floor, main = results.endpoints.get("floor"), results.endpoints.get(name)
    as_run = results.make_run.endpoints.get(name) if results.make_run else None
    if floor is None or main is None or as_run is None:
        return None
    floor_rps = floor.result.rps
    turns = make_run_turns(results, name)
    if turns is not None:  # the median of the rounds, both services in turns
        as_run_rps = statistics.median(map(rps, turns.other))
        main_rps = statistics.median(map(rps, turns.base))
        return median_ratio(turns, rps), as_run_rps / floor_rps, main_rps / floor_rps
    as_run_rps, main_rps = as_run.result.rps, main.result.rps
    return as_run_rps / main_rps, as_run_rps / floor_rps, main_rps / floor_rps


def make_run_turns(results: Results, name: str) -> Turns | None:
    """Endpoint `name`'s runs on both services in turns; None in runs made before them."""
    turns = results.make_run.turns.get(name) if results.make_run else None
    return turns if turns is not None and turns.other else None


def _make_run(results: Results) -> list[Target]:
    targets = []
    for name, what in MAKE_RUN_ENDPOINTS.items():
        key = f"make_run_{name}"
        goal = f"{what} as `make run` serves it (access log on) ≥ {MAKE_RUN_SHARE}x its share"
        goal += " of the floor above"
        shares = make_run_shares(results, name)
        if shares is None:
            targets.append(Target(key, goal, "not measured", None))
            continue
        ratio, as_run, main = shares
        measured = f"{ratio:.2f}x ({as_run:.2f} of the floor, against {main:.2f})"
        turns = make_run_turns(results, name)
        if turns is not None:
            measured = f"{ratio:.2f}x (median of rounds {_rounds(turn_ratios(turns, rps))}; "
            measured += f"medians {as_run:.2f} of the floor, against {main:.2f})"
        targets.append(Target(key, goal, measured, ratio >= MAKE_RUN_SHARE))
    return targets


def turn_ratios(turns: Turns, value: Callable[[Measurement], float]) -> list[float]:
    """Each round's ratio: the other side's value over the base side's around it (the mean
    of the base runs just before and just after, when the base side has the closing run:
    a drift of the machine over the runs then cancels), or in the same round."""
    base = [value(m) for m in turns.base]
    if len(base) == len(turns.other) + 1:
        base = [(before + after) / 2 for before, after in itertools.pairwise(base)]
    return [value(o) / b for b, o in zip(base, turns.other, strict=True)]


def median_ratio(turns: Turns, value: Callable[[Measurement], float]) -> float:
    """The median of the rounds' ratios (NaN without a round)."""
    ratios = turn_ratios(turns, value)
    return statistics.median(ratios) if ratios else math.nan


def rps(m: Measurement) -> float:
    return m.result.rps


def p50(m: Measurement) -> float:
    return m.result.p50_ms


def spread(ratio: float) -> float:
    """How far apart two values are, either way round: 1.25 for a ratio of 1.25 or 0.8."""
    return max(ratio, 1 / ratio)


def ratio_text(value: float, bound: float) -> str:
    """A ratio to two decimals, or three where two would make it read as its bound (1.203
    is not within 1.2)."""
    bounds = (bound, 1 / bound)
    close = any(f"{value:.2f}" == f"{b:.2f}" and value != b for b in bounds)
    return f"{value:.3f}x" if close else f"{value:.2f}x"


def _rounds(ratios: list[float]) -> str:
    return ", ".join(f"{r:.2f}" for r in ratios)


def _auth(auth: Auth | None) -> list[Target]:
    """Throughput with a user token against AUTH_MODE=none, and a user's chat list p50 in
    many chats against in few: medians of the rounds' ratios."""
    few, many = (auth.few_chats, auth.many_chats) if auth else (10, 10_000)
    targets = []
    for key, what, turns in (
        ("auth_get20", "GET limit=20", auth.get20 if auth else None),
        ("auth_post_message", "POST messages", auth.post_message if auth else None),
    ):
        goal = f"{what} with a user token ≥ {AUTH_SHARE}x AUTH_MODE=none, same run"
        if turns is None or not turns.base:
            targets.append(Target(key, goal, "not measured", None))
            continue
        ratio = median_ratio(turns, rps)
        rounds = _rounds(turn_ratios(turns, rps))
        measured = f"{ratio_text(ratio, AUTH_SHARE)} (median of rounds {rounds})"
        targets.append(Target(key, goal, measured, ratio >= AUTH_SHARE))
    goal = f"chat list p50, user in {many:,} chats within {CHAT_LIST_SPREAD}x of a user in {few:,}"
    if auth is None or not auth.chat_list.base:
        return [*targets, Target("auth_chat_list", goal, "not measured", None)]
    ratio = median_ratio(auth.chat_list, p50)
    rounds = _rounds(turn_ratios(auth.chat_list, p50))
    measured = f"{ratio_text(ratio, CHAT_LIST_SPREAD)} (median of rounds {rounds})"
    short = [m.result.p50_ms for m in auth.chat_list_short]
    if short:
        # The same user with limit=few: as many chats in the answer as the other user gets.
        same_length = statistics.median(short) / statistics.median(map(p50, auth.chat_list.base))
        measured += f"; {same_length:.2f}x with limit={few}, an answer as long"
    return [*targets, Target("auth_chat_list", goal, measured, spread(ratio) <= CHAT_LIST_SPREAD)]


def statuses(result: WrkResult) -> dict[int, int]:
    """The responses by status, as mixed_statuses.lua counted them."""
    prefix = "status_"
    return {
        int(name.removeprefix(prefix)): int(count)
        for name, count in sorted(result.extra.items())
        if name.startswith(prefix)
    }


def server_errors(result: WrkResult) -> int:
    return sum(count for status, count in statuses(result).items() if status >= 500)


def delete_spread(latency: DeleteLatency) -> float:
    return latency.big.p50_ms / latency.small.p50_ms


def delete_latency_met(latency: DeleteLatency) -> bool:
    """Every timed DELETE answered 204, and the big chat's p50 is within DELETE_SPREAD of
    the small chats' and at most DELETE_P50_MS."""
    all_deleted = set(latency.statuses) <= {"big 204", "small 204"}
    return (
        all_deleted
        and delete_spread(latency) <= DELETE_SPREAD
        and latency.big.p50_ms <= DELETE_P50_MS
    )


def purge_met(purge: Purge) -> bool:
    """The purge finished, and the GETs' p99 during it is at most PURGE_P99 of without."""
    return purge.delete_status == 204 and purge.finished and purge.p99_ratio <= PURGE_P99


def mixed_met(mixed: MixedDelete) -> bool:
    """No 5xx, no request timed out or failed, and the DELETE answered 204 within
    MIXED_DELETE_S."""
    failed = sum(count for kind, count in mixed.result.errors.items() if kind != "status")
    return (
        server_errors(mixed.result) == 0
        and failed == 0
        and mixed.delete_status == 204
        and mixed.delete_s <= MIXED_DELETE_S
    )


def _deletes(deletes: Deletes | None) -> list[Target]:
    latency_goal = (
        f"DELETE p50, 1M-message chat within {DELETE_SPREAD:g}x of a 3-message chat, and "
        f"≤ {DELETE_P50_MS:g} ms"
    )
    purge_goal = (
        f"the purge of the 1M-message chat finishes; other chats' GET p99 during it "
        f"≤ {PURGE_P99:g}x normal"
    )
    mixed_goal = (
        f"{MIXED_SECONDS} s mixed load (GET 80%, POST 20%, {MIXED_CONNECTIONS} connections), "
        f"1M-message chat deleted {MIXED_DELETE_AT_S:g} s in: no 5xx, no timeout, the DELETE "
        f"answered within {MIXED_DELETE_S:g} s"
    )
    if deletes is None:
        return [
            Target(key, goal, "not measured", None)
            for key, goal in (
                ("delete_p50", latency_goal),
                ("purge_p99", purge_goal),
                ("delete_mixed", mixed_goal),
            )
        ]
    latency, purge, mixed = deletes.latency, deletes.purge, deletes.mixed
    measured = (
        f"{latency.big.p50_ms:.1f} ms against {latency.small.p50_ms:.1f} ms: "
        f"{ratio_text(delete_spread(latency), DELETE_SPREAD)}"
    )
    failed = {k: v for k, v in latency.statuses.items() if k not in ("big 204", "small 204")}
    if failed:
        measured += " (" + ", ".join(f"{v} answered {k}" for k, v in failed.items()) + ")"
    if purge.delete_status != 204:
        purge_text = f"the DELETE answered {purge.delete_status}"
    elif not purge.finished:
        purge_text = (
            f"{ratio_text(purge.p99_ratio, PURGE_P99)}; not finished after {purge.purge_s:.0f} s"
        )
    else:
        purge_text = (
            f"{ratio_text(purge.p99_ratio, PURGE_P99)}; purged in {purge.purge_s:.1f} s "
            f"({purge.rows_per_s:,.0f} rows/s)"
        )
    errors = mixed.result.errors
    mixed_text = (
        f"{server_errors(mixed.result)} 5xx, {errors.get('timeout', 0)} timeouts; DELETE "
        f"{mixed.delete_status} in {mixed.delete_s:.3f} s; "
        + (
            f"purged {mixed.purged_after_s:.0f} s after it"
            if mixed.purged_after_s is not None
            else "purge not finished within the run"
        )
    )
    return [
        Target("delete_p50", latency_goal, measured, delete_latency_met(latency)),
        Target("purge_p99", purge_goal, purge_text, purge_met(purge)),
        Target("delete_mixed", mixed_goal, mixed_text, mixed_met(mixed)),
    ]


def evaluate(results: Results) -> list[Target]:
    endpoints, sizes = results.endpoints, results.chat_size
    floor = endpoints.get("floor")
    small, big = str(SMALL_CHAT_MESSAGES), str(BIG_CHAT_MESSAGES)

    def vs_floor(name: str) -> float | None:
        if floor is None or name not in endpoints:
            return None
        return endpoints[name].result.rps / floor.result.rps

    def size_ratio(kind: str) -> float | None:
        runs = sizes.get(kind, {})
        if big not in runs or small not in runs:
            return None
        return runs[big].result.p50_ms / runs[small].result.p50_ms

    def p50_ratio(name: str, base: str) -> float | None:
        if name not in endpoints or base not in endpoints:
            return None
        return endpoints[name].result.p50_ms / endpoints[base].result.p50_ms

    targets = [
        _ratio("get20", "GET limit=20 ≥ 0.5x floor", vs_floor("get20"), lambda v: v >= 0.5),
        _ratio(
            "post_message",
            "POST messages ≥ 0.33x floor",
            vs_floor("post_message"),
            lambda v: v >= 0.33,
        ),
        _ratio(
            "get_big_chat",
            "GET p50, 1M-message chat ≤ 1.2x 10-message chat",
            size_ratio("get"),
            lambda v: v <= 1.2,
        ),
        _ratio(
            "post_big_chat",
            "POST p50, 1M-message chat ≤ 1.2x 10-message chat",
            size_ratio("post"),
            lambda v: v <= 1.2,
        ),
        _ratio(
            "history_deep",
            f"history page {HISTORY_BACK:,} back p50 ≤ 1.2x newest page",
            p50_ratio(HISTORY_DEEP, HISTORY_NEWEST),
            lambda v: v <= 1.2,
        ),
    ]
    targets[0].profile = ("get.lua", "GET /chats/{id}?limit=20", ["1", "1000", "20"])
    targets[1].profile = ("post_message.lua", "POST /chats/{id}/messages/", ["1", "1000"])
    targets[2].profile = ("get.lua", "GET /chats/1001?limit=20", ["1001", "1001", "20"])
    targets[3].profile = ("post_message.lua", "POST /chats/1001/messages/", ["1001", "1001"])
    if HISTORY_DEEP in endpoints:
        deep = endpoints[HISTORY_DEEP]
        targets[4].profile = ("get_page.lua", deep.label, deep.result.args)

    # The other hot reads of issue 25, against the same floor.
    targets += [
        _ratio(
            "history_page",
            "GET history page (newest, limit=20) ≥ 0.45x floor",
            vs_floor(HISTORY_NEWEST),
            lambda v: v >= 0.45,
        ),
        _ratio(
            "chat_list",
            "GET /chats/ first page (limit=20) ≥ 0.45x floor",
            vs_floor(CHATS_FIRST),
            lambda v: v >= 0.45,
        ),
    ]
    soak = results.soak
    targets.append(
        _ratio(
            "rss",
            f"worker RSS within ±10% after {soak.requests if soak else 100_000:,} requests",
            soak.change_pct if soak else None,
            lambda v: abs(v) <= 10,
            fmt="{:+.1f}%",
        )
    )
    return (
        targets
        + _streams(results.streams)
        + [_event_cpu(results.streams)]
        + _workers(results.streams)
        + _make_run(results)
        + _auth(results.auth)
        + _deletes(results.deletes)
    )
