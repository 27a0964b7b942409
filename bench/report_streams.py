"""The stream scenarios' parts of docs/benchmarks.md that issue 24 added: server CPU per
delivered event against the stream floor, many idle streams, subscribers that never read."""

import statistics
from collections import Counter

from bench.markdown import pct, table
from bench.results import Measurement, NeverReading, Streams
from bench.streams import IDLE_THREAD_WAIT_S
from bench.stuck_streams import close_bracket, held_in_process, stuck_kib_per_stream
from bench.targets import CPU_PER_EVENT, cpu_per_event, cpu_per_request, event_cpus


def _us(seconds: float) -> str:
    return f"{1e6 * seconds:.1f} µs"


def _kib(size: float) -> str:
    return f"{size / 1024:,.1f} KiB"


def _event_row(
    label: str, without: Measurement, with_streams: Measurement, posted: int, delivered: int
) -> list[str]:
    return [
        label,
        f"{without.result.rps:,.0f}",
        f"{with_streams.result.rps:,.0f}",
        _us(cpu_per_request(without)),
        _us(cpu_per_request(with_streams)),
        f"{delivered / posted:.2f}" if posted else "n/a",
        f"**{_us(cpu_per_event(without, with_streams, posted, delivered))}**",
    ]


def event_cpu(streams: Streams) -> str:
    """The service's server CPU per delivered event against the stream floor's."""
    floor, cpus = streams.floor, event_cpus(streams)
    if floor is None or cpus is None:
        return ""
    rows = [
        _event_row(
            "stream floor",
            floor.post_without,
            floor.post_with,
            floor.posted_with,
            floor.delivered_with,
        ),
        _event_row(
            "the service",
            streams.post_without,
            streams.post_with,
            streams.posted_with,
            streams.delivered_with,
        ),
    ]
    service, bare = cpus
    ratio = f"**{service / bare:.2f}x**" if bare > 0 else "not measurable (the floor's ≤ 0)"
    headings = [
        "server",
        "POST/s, no stream",
        f"POST/s, {streams.streams:,} streams",
        "server CPU per post, no stream",
        "with the streams",
        "events per post",
        "server CPU per delivered event",
    ]
    return "\n\n".join(
        [
            "**Server CPU per delivered event.** The POST run above, no stream open and then "
            f"with the same {streams.streams:,} streams open, on the stream floor "
            "([bench/stream_floor.py](../bench/stream_floor.py): a bare ASGI app, no framework, "
            "that encodes each post's event once and writes the same bytes to every stream of "
            "its chat from the request's task) pinned as the service, in the same run "
            f"(its streams all open {floor.open_s:.1f} s after the stream client started; "
            f"{floor.delivered_with:,} of {floor.expected_with:,} events arrived). Server CPU "
            "per delivered event = (server CPU-seconds per post with the streams open - per "
            "post with none) x posts / events delivered, where CPU-seconds per post = server "
            "CPU share x the run's seconds / its requests, and posts and events are those of "
            "the run with the streams (warm-up included).",
            table(headings, "lrrrrrr", rows),
            f"The service against the floor: {ratio} (target ≤ {CPU_PER_EVENT}x).",
        ]
    )


def many_idle(streams: Streams) -> str:
    found = streams.many_idle
    if found is None:
        return ""
    idle = found.idle
    rows = [
        [label, f"{rss / 1024:.1f} MiB", *(pct(v) for v in (cpu.server_pct, cpu.clients_pct))]
        for label, rss, cpu in (
            ("no stream open", idle.rss_without_kib, idle.without),
            (f"{found.streams:,} streams open", idle.rss_with_kib, idle.with_streams),
        )
    ]
    per_stream = (idle.rss_with_kib - idle.rss_without_kib) / found.streams
    return "\n\n".join(
        [
            f"**{found.streams:,} idle streams on one worker.** A service of its own, pinned "
            f"as above (`MAX_STREAMS={found.streams}`, `LIMIT_CONCURRENCY={found.streams + 100}`"
            f", `THREAD_WAIT_TIMEOUT={IDLE_THREAD_WAIT_S}`), {found.streams:,} streams over "
            f"chats 1..{found.chats} from the stream client, "
            f"all open {found.open_s:.1f} s after it started; nothing posted. Its RSS and its "
            f"CPU over {idle.seconds:g} s (in % of one core), before they were opened (after "
            "a few were opened and closed, to warm the path) and once they were: "
            f"**{per_stream:.1f} KiB per open stream**; server CPU "
            f"**{pct(idle.with_streams.server_pct)}** with them open. No timer per stream is "
            "the design (heartbeats and send deadlines kept by one task per process): the CPU "
            "with every stream open against none open shows whether it holds. The streams got "
            f"{idle.pings:,} heartbeat comments over the window; the server closed "
            f"{found.dropped} of them.",
            table(["server", "RSS", "CPU: server", "stream client"], "lrrr", rows),
        ]
    )


def _closes(found: NeverReading) -> str:
    """How the stuck subscribers' closes were seen, and when."""
    how = Counter(each.closed for each in found.stuck)
    counted = ", ".join(f"{count} {kind}" for kind, count in how.most_common())
    timeout = found.send_timeout_s
    seen = [each.closed_after_s for each in found.stuck if each.closed_after_s is not None]
    drains = [
        (each.drained_after_s, each.closed != "open")
        for each in found.stuck
        if each.drained_after_s is not None and each.closed_after_s is None
    ]
    still_open, closed = close_bracket(drains)
    parts = [f"Of the {len(found.stuck)} subscribers: {counted}."]
    if seen:
        parts.append(
            f"Closes seen without a read: {min(seen):.2f} to {max(seen):.2f} s after the "
            f"server's sends to them began to wait (median {statistics.median(seen):.2f} s)."
        )
    if drains:
        bracket = (
            f"still open when drained {still_open:.2f} s after they got stuck at the latest"
            if still_open is not None
            else "none still open when drained"
        )
        bracket += (
            f", closed when drained {closed:.2f} s after at the earliest"
            if closed is not None
            else ", none closed when drained"
        )
        parts.append(f"Drained at their times: {bracket}.")
    parts.append(
        f"Expected: closed between {timeout:g} s and {1.25 * timeout:g} s after they got stuck "
        "(STREAM_SEND_TIMEOUT, checked every quarter of it)."
    )
    return " ".join(parts)


def never_reading(streams: Streams) -> str:
    found = streams.never_reading
    if found is None or not found.stuck:
        return ""
    stuck = found.stuck
    held = [v for v in map(held_in_process, stuck) if v is not None]
    rows = [
        [
            "the server's socket send queue, at its most (kernel)",
            _kib(statistics.median(each.send_queue_bytes for each in stuck)),
            f"`tcp_wmem` {found.tcp_wmem}",
        ],
        [
            "the subscriber's receive queue (kernel)",
            _kib(statistics.median(each.unread_bytes for each in stuck)),
            f"SO_RCVBUF {found.rcvbuf_bytes:,} B granted",
        ],
        [
            "held in the server's process (drained - both queues)",
            _kib(statistics.median(held)) if held else "n/a (none closed after a drain)",
            f"uvicorn's transport takes {found.write_high_water_bytes:,} B before a send waits",
        ],
        [
            "server RSS growth beyond the readers-only burst's",
            f"{stuck_kib_per_stream(found):,.0f} KiB",
            f"RSS {found.rss_before_kib / 1024:.1f} → {found.rss_stuck_kib / 1024:.1f} MiB; "
            f"readers alone {found.rss_control_before_kib / 1024:.1f} → "
            f"{found.rss_control_after_kib / 1024:.1f} MiB",
        ],
    ]
    faults = {name: count for name, count in found.reader_faults.items() if count}
    readers = (
        f"The {found.readers} reading streams got {found.delivered:,} of {found.expected:,} "
        "events of the burst"
        + (f" ({', '.join(f'{v} {k}' for k, v in faults.items())})" if faults else ", in order")
        + f", the last {found.catch_up_s:.2f} s after its last 201."
    )
    return "\n\n".join(
        [
            f"**Subscribers that never read.** A service of its own, pinned as above, "
            f"`STREAM_SEND_TIMEOUT={found.send_timeout_s:g}`; {found.readers} streams that read "
            f"(the stream client) over chats 1..{found.chats}, and a burst of {found.posts:,} "
            f"posts of {found.text_bytes:,}-character texts to those chats, from 8 connections. "
            f"Then {len(stuck)} subscribers on the same chats that read the response head and "
            f"nothing more ([bench/stuck_streams.py](../bench/stuck_streams.py)), and the same "
            f"burst again ({found.burst_s:.1f} s): enough for each to overfill what its "
            "buffers can take. A subscriber counts as stuck from the moment the harness read "
            "the 201 of the last event the server sent it (its drained bytes say which; the "
            "send after that one waited): the harness reads its 201s on the client's CPU, so "
            "this can be late by that CPU's delays. Each is watched unread from both ends (the "
            "server's send queue for it in /proc/net/tcp; poll on its own socket), then drained "
            "at its own time, from half the timeout to twice it after it got stuck: one the "
            "server had given up on ends once drained. Per stuck subscriber (medians):",
            table(["what a stuck subscriber costs", "each", "beside"], "lrl", rows),
            _closes(found),
            readers,
        ]
    )
