"""The targets the service is held to, and whether a run met them (reported, not asserted)."""

import math
from collections.abc import Callable
from dataclasses import dataclass

from bench.config import BenchConfig
from bench.dataset import BIG_CHAT_MESSAGES, SMALL_CHAT_MESSAGES
from bench.paging import HISTORY_BACK, HISTORY_DEEP, HISTORY_NEWEST
from bench.results import Delivery, Measurement, Results, Streams

DELIVERY_P99_MS = 50.0  # from a post's 201 to its event on every stream of its chat
POST_WITH_STREAMS = 0.9  # POST throughput with every stream open, against none open


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

    delete = results.big_delete
    if delete is None:
        targets.append(Target("delete_time", "DELETE of the 1M chat ≤ 3 s", "not measured", None))
        targets.append(
            Target("delete_p99", "other chats' GET p99 during it ≤ 2x normal", "not measured", None)
        )
    else:
        ok = delete.status == 204
        measured = f"{delete.wall_s:.2f} s" + ("" if ok else f" (status {delete.status})")
        targets.append(
            Target(
                "delete_time", "DELETE of the 1M chat ≤ 3 s", measured, ok and delete.wall_s <= 3
            )
        )
        targets.append(
            _ratio(
                "delete_p99",
                "other chats' GET p99 during it ≤ 2x normal",
                delete.p99_ratio,
                lambda v: v <= 2,
            )
        )
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
    return targets + _streams(results.streams)
