"""Issue 24's yardsticks: the stream floor's bytes, CPU per delivered event, stuck subscribers."""

import asyncio
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from api.live.sse import message_posted
from api.schemas import MessageResponse
from bench.procstat import CpuUsage
from bench.results import Measurement, NeverReading, StuckStream
from bench.stream_floor import StreamFloor, event_bytes, message_json
from bench.streams import burst_posts
from bench.stuck_streams import (
    close_bracket,
    count_posted,
    drain_delays,
    held_in_process,
    last_seq,
    server_sockets,
    stuck_kib_per_stream,
    stuck_since,
    stuck_times,
)
from bench.targets import cpu_per_event, cpu_per_request
from bench.wrk import WrkResult

AT = datetime(2026, 11, 22, 14, 10, 49, 829140, tzinfo=UTC)


def test_the_floor_sends_the_service_s_bytes_for_the_same_message() -> None:
    data = message_json(7, 1, 7, "See you at noon?", AT)
    message = MessageResponse.model_validate_json(data)

    assert event_bytes(7, data) == message_posted(message)


def run(server_pct: float, seconds: float, requests: int) -> Measurement:
    result = WrkResult(
        script="post_message.lua",
        args=[],
        command=[],
        requests=requests,
        duration_s=seconds,
        rps=requests / seconds,
        p50_ms=1.0,
        p90_ms=1.0,
        p99_ms=1.0,
        p999_ms=1.0,
        max_ms=1.0,
        mean_ms=1.0,
        errors={},
    )
    cpu = CpuUsage(server_pct, 0.0, 0.0, 0.0, 0.0)
    return Measurement("post", "POST", result, 0.0, 0, cpu, 0.0, 0)


def test_cpu_per_event_is_the_extra_cpu_per_post_over_the_events_per_post() -> None:
    without = run(80.0, 10.0, 160_000)  # 50 µs a post
    with_streams = run(90.0, 10.0, 60_000)  # 150 µs a post

    assert cpu_per_request(without) == pytest.approx(50e-6)
    # 100 µs more a post; 10 events a post (warm-up included: 8,000 posts, 80,000 events).
    assert cpu_per_event(without, with_streams, 8_000, 80_000) == pytest.approx(10e-6)
    assert math.isnan(cpu_per_event(without, with_streams, 8_000, 0))


def test_the_floor_writes_each_post_to_every_stream_of_its_chat_once() -> None:
    floor = StreamFloor()
    sent: dict[str, list[dict[str, Any]]] = {"a": [], "b": [], "post": []}

    def sender(name: str) -> Any:
        async def send(message: dict[str, Any]) -> None:
            sent[name].append(message)

        return send

    async def body() -> dict[str, Any]:
        return {"type": "http.request", "body": b'{"text": "hi"}', "more_body": False}

    async def scenario() -> None:
        floor.streams = {1: {sender("a")}, 2: {sender("b")}}
        scope = {"type": "http", "method": "POST", "path": "/chats/1/messages/"}
        await floor(scope, body, sender("post"))

    asyncio.run(scenario())

    assert [m["body"][:6] for m in sent["a"]] == [b"id: 1\r"]
    assert sent["b"] == []
    assert sent["post"][0]["status"] == 201
    assert floor.seqs == {1: 1}


def test_the_server_s_connections_are_read_from_proc_net_tcp() -> None:
    table = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt\n"
        "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000\n"
        "   1: 0100007F:1F90 0100007F:C350 01 002D97DB:00000000 01:00000014 00000000\n"
        "   2: 0100007F:C350 0100007F:1F90 01 00000000:0000184D 00:00000000 00000000\n"
        "   3: 0100007F:1F90 0100007F:C351 04 00001000:00000000 01:00000014 00000000\n"
    )

    assert server_sockets(table, 8080) == {
        0: ("0A", 0),
        50000: ("01", 2987995),
        50001: ("04", 4096),
    }


def test_a_send_queue_is_full_once_within_two_per_cent_of_its_most() -> None:
    changes = [(1.0, 0), (2.0, 1_000_000), (3.0, 2_950_000), (4.0, 2_990_000)]

    assert stuck_since(changes, 2_990_000) == 3.0
    assert stuck_since([(1.0, 0)], 0) is None


def test_a_stuck_subscriber_is_stuck_from_the_201_of_the_last_event_it_was_sent() -> None:
    answered = {(1, 736): 10.0, (1, 737): 10.5, (2, 736): 11.0}
    stuck = [(1, 737, 9.0), (1, None, 9.0), (2, 736, 9.0), (3, None, 12.0)]

    # Known; its chat's others; known; only its queue.
    assert stuck_times(stuck, answered) == [10.5, 10.5, 11.0, 12.0]


def test_events_in_drained_bytes_are_counted_and_the_last_id_found() -> None:
    body = (
        b"d\r\nretry: 2000\r\n\r\n"
        + b"1a\r\nid: 41\r\nevent: message.posted\r\ndata: {}\r\n\r\n\r\n"
        + b"1a\r\nid: 42\r\nevent: message.posted\r\ndata: {}\r\n\r\n\r\n"
    )

    assert count_posted(body) == 2
    assert last_seq(body) == 42
    assert last_seq(b"d\r\nretry: 2000\r\n") is None


def test_drains_are_spread_from_half_the_timeout_to_twice_it() -> None:
    assert drain_delays(4, 3.0) == pytest.approx([1.5, 3.0, 4.5, 6.0])
    assert drain_delays(1, 3.0) == [3.0]


def test_the_close_is_bracketed_by_the_latest_open_and_earliest_closed_drain() -> None:
    drains = [(1.5, False), (2.9, False), (3.2, True), (4.0, True)]

    assert close_bracket(drains) == (2.9, 3.2)
    assert close_bracket([(1.5, True)]) == (None, 1.5)


def stuck(closed: str, drained: int = 3_070_000) -> StuckStream:
    return StuckStream(1, 3_000_000, 3.0, closed, None, 4.0, 6_000, drained, 737, 737)


def test_what_a_closed_subscriber_held_in_the_process_is_what_the_kernel_did_not() -> None:
    assert held_in_process(stuck("eof after drain")) == 64_000
    assert held_in_process(stuck("open")) is None


def test_rss_per_stuck_subscriber_is_beyond_the_readers_only_burst() -> None:
    found = NeverReading(
        send_timeout_s=3.0,
        chats=2,
        readers=20,
        text_bytes=4000,
        posts=2568,
        rcvbuf_bytes=8192,
        tcp_wmem="4096 16384 4194304",
        tcp_rmem="4096 131072 33554432",
        write_high_water_bytes=65536,
        rss_control_before_kib=100_000,
        rss_control_after_kib=110_000,
        rss_before_kib=111_000,
        rss_stuck_kib=122_000,
        rss_after_kib=122_000,
        burst_s=8.0,
        expected=25_680,
        delivered=25_680,
        reader_faults={},
        catch_up_s=0.0,
        stuck=[stuck("open"), stuck("open")],
    )

    assert stuck_kib_per_stream(found) == pytest.approx(500.0)


def test_a_burst_overfills_the_largest_send_buffer_and_the_transport_s() -> None:
    # 1.25 x (4 MiB + 64 KiB) / 4,150 bytes an event = 1,284 posts a chat.
    assert burst_posts(4_194_304, 65_536, 2) == 2 * 1284
    assert burst_posts(10**9, 65_536, 2) == 10_000
