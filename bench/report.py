"""Writes docs/benchmarks.{md,json,png} from a run's results.

The page is bench/report_template.md filled with tables made from the results; what does not
change from run to run (how the benchmark works) is in docs/performance.md. To render the page
again from saved results, after a change to the report, without a new run:

    .venv/bin/python -m bench.report docs/benchmarks.json
"""

import math
import re
import shlex
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from string import Template

from bench import auth, observations, plot, report_deletes, report_streams
from bench.config import knobs
from bench.dataset import (
    BIG_CHAT_MESSAGES,
    CHAT_COUNT,
    CHAT_OF_SIZE,
    MESSAGES_PER_CHAT,
    POOL_MESSAGES,
    SMALL_CHAT_MESSAGES,
)
from bench.markdown import ms as _ms
from bench.markdown import pct as _pct
from bench.markdown import section as _section
from bench.markdown import table
from bench.paging import (
    CHATS_DEEP,
    CHATS_FIRST,
    HISTORY_DEEP,
    HISTORY_NEWEST,
    PAGE_LIMIT,
    WALK_LIMIT,
)
from bench.replicas import WARM_ROUNDS
from bench.results import (
    WORKERS_1,
    WORKERS_2,
    Auth,
    IndexRead,
    Latency,
    MakeRun,
    Measurement,
    Profile,
    ReadsOn,
    Replicas,
    Results,
    Streams,
    Turns,
    load,
    save,
)
from bench.scenarios import DISTURBED_PCT
from bench.targets import (
    AUTH_SHARE,
    CHAT_LIST_SPREAD,
    MAKE_RUN_SHARE,
    WORKERS_SCALING,
    Target,
    cpu_split,
    evaluate,
    median_ratio,
    p50,
    ratio_text,
    rps,
    turn_ratios,
)
from bench.wrk import LUA_DIR, WrkResult

ROOT = LUA_DIR.parent.parent
TEMPLATE = Path(__file__).with_name("report_template.md")
ENDPOINT_ORDER = (
    "floor",
    "get20",
    "get100",
    CHATS_FIRST,
    CHATS_DEEP,
    HISTORY_NEWEST,
    HISTORY_DEEP,
    "post_chat",
    "post_message",
    "delete",
)


def write(results: Results, targets: list[Target], docs: Path) -> None:
    docs.mkdir(exist_ok=True)
    save(results, docs / "benchmarks.json", targets=[verdict(t) for t in targets])
    plot.plot(results, _measured(results), docs / "benchmarks.png")
    (docs / "benchmarks.md").write_text(markdown(results, targets))


def verdict(target: Target) -> dict[str, object]:
    return {
        "key": target.key,
        "goal": target.goal,
        "measured": target.measured,
        "verdict": target.verdict,
    }


def _measured(results: Results) -> list[str]:
    return [name for name in ENDPOINT_ORDER if name in results.endpoints]


# --- pieces ----------------------------------------------------------------------------------


def _command(result: WrkResult, url: str) -> str:
    words = [word.replace(str(ROOT) + "/", "") for word in result.command]
    words = [url if word.startswith("http://") else word for word in words]
    words[0 if words[0] != "taskset" else 3] = "wrk"
    return shlex.join(words)


def _code(results: Results) -> str:
    code = results.code
    line = f"The service measured: commit `{code['commit']}` ({code['subject']})"
    if code["uncommitted"]:
        files = ", ".join(f"`{name}`" for name in code["uncommitted"][:8])
        more = len(code["uncommitted"]) - 8
        line += f", plus uncommitted changes to {files}" + (f" and {more} more" if more > 0 else "")
    return line + "."


def _machine(results: Results) -> str:
    machine = results.machine
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    return "\n".join(
        [
            f"- CPU: {machine['cpu_model']}, {machine['cores']} cores (reported at "
            f"{machine['cpu_mhz']} MHz), {machine['memory_gib']} GiB of memory; {machine['os']}, "
            f"Linux {machine['kernel']}.",
            f"- Python {machine['python']}; {packages}.",
            f"- {machine['wrk']}.",
            f"- Servers: one uvicorn worker each, event loop {machine['event_loop']}, HTTP parser "
            f"{machine['http']}.",
        ]
    )


def _grown(results: Results, size: int) -> str:
    """How many messages the chat of that size had after the POST runs."""
    count = results.chat_size_after_posts.get(str(size))
    return "?" if count is None else f"{count:,}"


def _this_run(results: Results) -> str:
    """What this run did, in numbers: the dataset, pinning, load and where the pages start."""
    config, data, pins, paging = results.config, results.dataset, results.pinning, results.paging
    lines = [
        f"- Dataset: {data.chats:,} chats and {data.messages:,} messages: {CHAT_COUNT:,} chats "
        f"(ids 1..{CHAT_COUNT}) x {MESSAGES_PER_CHAT:,} messages; chat "
        f"{CHAT_OF_SIZE[BIG_CHAT_MESSAGES]} with {BIG_CHAT_MESSAGES:,} messages and chat "
        f"{CHAT_OF_SIZE[SMALL_CHAT_MESSAGES]} with {SMALL_CHAT_MESSAGES}; the DELETE pool, "
        f"{data.pool_last - data.pool_first + 1:,} chats ({data.pool_first}..{data.pool_last}) "
        f"with {POOL_MESSAGES} messages each. Loaded in **{data.total_s:.1f} s** (inserts "
        f"{data.insert_s:.1f} s, read model rebuild {data.rebuild_s:.1f} s, VACUUM ANALYZE and "
        f"CHECKPOINT {data.vacuum_s:.1f} s).",
        "- The floor's body: a real `GET /chats/1?limit=20` response, "
        f"{results.floor_body_bytes:,} bytes.",
        (
            f"- Pinning: the server on CPU {pins['server']} (`taskset -c {pins['server']}`), "
            f"alone; wrk and the harness on CPU {pins['client']}; PostgreSQL on CPU "
            f"{pins['postgres']}."
            if pins["server"]
            else "- Pinning: none (BENCH_PIN=0, or a single core)."
        ),
        f"- Load: wrk `-t{config['threads']} -c{config['connections']} -d{config['duration']}s`, "
        f"each run after an unmeasured {config['warmup']} s warm-up; a run in which other "
        f"processes used {DISTURBED_PCT:.0f}% of a core or more measured again up to "
        f"{config['retries']} times. `GET` and `POST` on `/chats/{{id}}`: id uniform in "
        f"1..{CHAT_COUNT}.",
    ]
    if paging is not None:
        lines.append(
            f"- Pages of {PAGE_LIMIT}: the chat list's deep page after its first "
            f"{paging.chat_list_depth:,} chats (of {paging.chats:,}), reached walking the list "
            f"with limit={WALK_LIMIT}; the history's deep page just older than the message "
            f"{paging.history_back:,} back in the {BIG_CHAT_MESSAGES:,}-message chat (id "
            f"{paging.history_message_id})."
        )
    lines += [
        f"- Chat size: chats of {SMALL_CHAT_MESSAGES}, {MESSAGES_PER_CHAT:,} and "
        f"{BIG_CHAT_MESSAGES:,} messages; the POST runs grew the {SMALL_CHAT_MESSAGES}-message "
        f"chat to {_grown(results, SMALL_CHAT_MESSAGES)} messages, the "
        f"{MESSAGES_PER_CHAT:,}-message one to {_grown(results, MESSAGES_PER_CHAT)}.",
        f"- Memory: RSS read after the soak's warm-up, then after {config['soak_requests']:,} "
        "more requests of it.",
    ]
    return "\n".join(lines)


def _endpoints(results: Results) -> str:
    floor = results.endpoints["floor"].result.rps
    rows = []
    for name in _measured(results):
        m = results.endpoints[name]
        r, cpu = m.result, m.cpu
        rows.append(
            [
                m.label,
                f"{r.rps:,.0f}",
                f"{r.rps / floor:.2f}",
                _ms(r.p50_ms),
                _ms(r.p99_ms),
                *(f"{pct:.0f}%" for pct in (cpu.server_pct, cpu.postgres_pct, cpu.wrk_pct)),
                f"{cpu.other_pct:.0f}%",
            ]
        )
    headings = ["endpoint", "requests/s", "share of floor", "p50", "p99", "CPU: server"]
    return table([*headings, "PostgreSQL", "wrk", "other"], "lrrrrrrrr", rows)


def _paging(results: Results) -> str:
    """The deep pages' p50 against the first (or newest) page's, per listing."""
    paging, endpoints = results.paging, results.endpoints
    names = (CHATS_FIRST, CHATS_DEEP, HISTORY_NEWEST, HISTORY_DEEP)
    if paging is None or any(name not in endpoints for name in names):
        return ""
    first, deep, newest, back = (endpoints[name].result for name in names)
    rows = [
        [
            "`GET /chats/`",
            _ms(first.p50_ms),
            f"after {paging.chat_list_depth:,} of {paging.chats:,} chats",
            _ms(deep.p50_ms),
            f"{deep.p50_ms / first.p50_ms:.2f}x",
        ],
        [
            f"`GET /chats/{paging.history_chat}/messages/` ({BIG_CHAT_MESSAGES:,} messages)",
            _ms(newest.p50_ms),
            f"{paging.history_back:,} messages back",
            _ms(back.p50_ms),
            f"{back.p50_ms / newest.p50_ms:.2f}x",
        ],
    ]
    headings = ["listing", "first page p50", "deep page", "deep page p50", "deep / first"]
    requests = "\n".join(["```", paging.paths[CHATS_DEEP], paging.paths[HISTORY_DEEP], "```"])
    return _section(
        "Paging: deep pages against the first",
        table(headings, "lrlrr", rows),
        "The deep pages' requests, as wrk sent them:",
        requests,
    )


def _sizes(results: Results) -> str:
    rows = []
    for size in CHAT_OF_SIZE:
        cells = [f"{size:,}"]
        for kind in ("get", "post"):
            m = results.chat_size.get(kind, {}).get(str(size))
            r = None if m is None else m.result
            cells += ["n/a"] * 3 if r is None else [_ms(r.p50_ms), _ms(r.p99_ms), f"{r.rps:,.0f}"]
        rows.append(cells)
    headings = ["messages in the chat", "GET p50", "GET p99", "GET req/s", "POST p50"]
    return table([*headings, "POST p99", "POST req/s"], "rrrrrrr", rows)


def _plans(results: Results) -> str:
    """The GET statement's plan per chat size, as PostgreSQL ran it after the GET runs."""
    if not results.get_plans:
        return ""
    blocks = [
        "How PostgreSQL ran the service's GET statement (`queries.get_chat`, limit=20) on each "
        "of these chats, right after their GET runs (`EXPLAIN (ANALYZE, BUFFERS)`):"
    ]
    for size, plan in results.get_plans.items():
        summary = f"<details>\n<summary>{int(size):,}-message chat</summary>"
        blocks.append(f"{summary}\n\n```\n{plan}\n```\n\n</details>")
    return "\n\n".join(blocks)


def _soak(results: Results) -> str:
    s = results.soak
    if s is None:
        return ""
    samples = ", ".join(f"{n:,}: {kib / 1024:.1f}" for n, kib in s.samples)
    return _section(
        "Worker memory",
        f"RSS **{s.rss_before_kib / 1024:.1f} MiB** after the warm-up, "
        f"**{s.rss_after_kib / 1024:.1f} MiB** after {s.requests:,} more requests "
        f"({s.change_pct:+.1f}%), at {s.rps:,.0f} requests/s (CPU: server "
        f"{s.cpu.server_pct:.0f}%, PostgreSQL {s.cpu.postgres_pct:.0f}%, other "
        f"{s.cpu.other_pct:.0f}%). Readings along the way (requests: MiB): {samples}.",
    )


def _make_run(results: Results) -> str:
    as_run = results.make_run
    if as_run is None:
        return ""
    if as_run.turns:
        return _make_run_turns(as_run)
    floor = results.endpoints["floor"].result.rps
    rows, ratios = [], []
    for name, again in as_run.endpoints.items():
        main = results.endpoints.get(name)
        if main is None:
            continue
        for m, label in ((main, f"{main.label}, ACCESS_LOG=false (above)"), (again, again.label)):
            r, cpu = m.result, m.cpu
            rows.append(
                [
                    label,
                    f"{r.rps:,.0f}",
                    f"{r.rps / floor:.2f}",
                    f"{r.rps / main.result.rps:.2f}",
                    _ms(r.p50_ms),
                    _ms(r.p99_ms),
                    *(_pct(v) for v in (cpu.server_pct, cpu.postgres_pct, cpu.wrk_pct)),
                    _pct(cpu.other_pct),
                ]
            )
        ratios.append(f"{main.label} **{again.result.rps / main.result.rps:.2f}x**")
    headings = ["endpoint", "requests/s", "share of floor", "against the run above", "p50"]
    cpu_headings = ["p99", "CPU: server", "PostgreSQL", "wrk", "other"]
    how = (
        "The GET and POST runs above again, right after the POST run. The service above is "
        "stopped meanwhile (SIGSTOP, continued after), so that this one has the CPU to itself "
        "as that one had: idle, it would still read the hints each POST sends to every "
        "process."
    )
    return _make_run_section(
        as_run,
        how,
        [table([*headings, *cpu_headings], "lrrrrrrrrr", rows)],
        f"Share of the floor as `make run` serves it, against the run above: {', '.join(ratios)}",
    )


def _make_run_turns(as_run: MakeRun) -> str:
    """The `make run` section of a run that measured both services in turns."""
    how = (
        "The GET and POST runs above again, right after the POST run, each measured in "
        "turns: the service above (ACCESS_LOG=false), this one, the service above, ..., the "
        "service above, each stopped (SIGSTOP, continued after) while the other runs, so "
        "that each has the CPU to itself (idle, it would still read the hints each POST "
        "sends to every process); each round's ratio against the mean of the runs of the "
        "service above just before and just after it, and the target's the median of the "
        "rounds."
    )
    tables = [
        _turn_table(turns, "against ACCESS_LOG=false, requests/s")
        for turns in as_run.turns.values()
    ]
    ratios = [
        f"{turns.base[0].label} {_median(turns, rps, MAKE_RUN_SHARE)}"
        for turns in as_run.turns.values()
    ]
    summary = f"Throughput as `make run` serves it, against ACCESS_LOG=false: {', '.join(ratios)}"
    return _make_run_section(as_run, how, tables, summary)


def _make_run_section(as_run: MakeRun, how: str, tables: list[str], summary: str) -> str:
    """The `make run` section: the service, `how` it was measured, its `tables`, and the
    `summary` of its ratios, to which the target is added."""
    per_line = as_run.log_bytes / as_run.log_lines if as_run.log_lines else 0
    return _section(
        "As `make run` serves it: the request log on",
        "`chatapi serve` started as `make run` starts it (the schema migrated already): "
        "DATABASE_URL, HOST and PORT set, every other setting at its default, so the request "
        f"log is on and WORKERS={as_run.workers}; its stdout, where the request lines go, to "
        "a file, as a deployment's log collector would take it; pinned as the service above. "
        f"{how} The server wrote {as_run.log_lines:,} request lines to its stdout "
        f"({as_run.log_bytes / 2**20:,.1f} MiB, {per_line:.0f} bytes a line), warm-up runs "
        "included.",
        *tables,
        f"{summary} (target ≥ {MAKE_RUN_SHARE}x).",
    )


def _streams_when(results: Results, streams: Streams) -> str:
    if streams.alone:
        same = "by a `BENCH_ONLY=streams` run; the other sections are from the run above"
    else:
        same = "in the same run as the sections above"
    commit = streams.code["commit"]
    changed = " plus uncommitted changes" if streams.code["uncommitted"] else ""
    return f"Measured on {streams.started_at} (commit `{commit}`{changed}), {same}."


def _delivery(streams: Streams) -> str:
    d, cpu = streams.delivery, streams.delivery.cpu
    headings = ["deliveries", "p50", "p90", "p99", "p99.9", "max", "before the 201"]
    row = [
        f"{d.received:,} of {d.expected:,}",
        *(_ms(v) for v in (d.p50_ms, d.p90_ms, d.p99_ms, d.p999_ms, d.max_ms)),
        f"{d.early:,}",
        *(_pct(v) for v in (cpu.server_pct, cpu.postgres_pct, cpu.wrk_pct, cpu.clients_pct)),
        _pct(cpu.other_pct),
    ]
    cpu_headings = ["CPU: server", "PostgreSQL", "poster", "stream client", "other"]
    return "\n\n".join(
        [
            f"**Delivery latency.** [bench/poster.py](../bench/poster.py) posted {d.posts:,} "
            f"messages at {d.rate:.0f} a second, in turn over the chats, from a process of its "
            "own on keep-alive connections (99% of its sends left within "
            f"{d.late_p99_ms:.1f} ms of their slot). Latency runs from the moment the poster had "
            "read a post's 201 to the arrival of its event on each stream of its chat (the same "
            "monotonic clock in both processes); an event that came before the 201 counts as "
            "0 ms, one that never came as infinitely late.",
            table([*headings, *cpu_headings], "rrrrrrrrrrrr", [row]),
        ]
    )


def _idle(streams: Streams) -> str:
    idle = streams.idle
    rows = [
        [
            label,
            f"{rss / 1024:.1f} MiB",
            _pct(cpu.server_pct),
            _pct(cpu.postgres_pct),
            _pct(cpu.clients_pct),
        ]
        for label, rss, cpu in (
            ("no stream open", idle.rss_without_kib, idle.without),
            (f"{streams.streams:,} streams open", idle.rss_with_kib, idle.with_streams),
        )
    ]
    per_stream = (idle.rss_with_kib - idle.rss_without_kib) / streams.streams
    headings = ["server", "RSS", "CPU: server", "PostgreSQL", "stream client"]
    return "\n\n".join(
        [
            f"**Idle streams.** The server's RSS, and its CPU over {idle.seconds:g} s with "
            "nothing posted (in % of one core), before the streams were opened and once they "
            f"were: **{per_stream:.1f} KiB per open stream**. The streams got {idle.pings:,} "
            "heartbeat comments during the second window.",
            table(headings, "lrrrr", rows),
        ]
    )


def _post_with(streams: Streams) -> str:
    rows = []
    runs = (
        ("no stream open", streams.post_without),
        (f"{streams.streams:,} streams open", streams.post_with),
    )
    for label, m in runs:
        r, cpu = m.result, m.cpu
        rows.append(
            [
                label,
                f"{r.rps:,.0f}",
                f"{r.rps / streams.post_without.result.rps:.2f}",
                _ms(r.p50_ms),
                _ms(r.p99_ms),
                *(_pct(v) for v in (cpu.server_pct, cpu.postgres_pct, cpu.wrk_pct)),
                _pct(cpu.clients_pct),
                _pct(cpu.other_pct),
            ]
        )
    headings = ["POST /chats/{id}/messages/", "requests/s", "ratio", "p50", "p99", "CPU: server"]
    arrived = (
        "all of them"
        if streams.delivered_with == streams.expected_with
        else f"{streams.delivered_with:,} of them"
    )
    return "\n\n".join(
        [
            f"**POST throughput with the streams open.** wrk as in the POST benchmark above, "
            f"over chats 1..{streams.chats}, first with no stream open, then with every stream "
            "open (each post wakes the streams of its chat).",
            table([*headings, "PostgreSQL", "wrk", "stream client", "other"], "lrrrrrrrrr", rows),
            f"With the streams open, {streams.posted_with:,} messages were posted (warm-up and "
            f"measured run) for {streams.expected_with:,} events on the streams: {arrived} "
            f"arrived, the last {streams.catch_up_s:.2f} s after the posting ended. Streams "
            f"closed by the server during the scenarios: {streams.dropped}.",
        ]
    )


def _workers_table(what: str, runs: dict[str, Measurement], cores: int) -> str:
    base = runs.get(WORKERS_1)
    rows = []
    for m in runs.values():
        r, cpu = m.result, m.cpu
        ratio = f"{r.rps / base.result.rps:.2f}" if base else "n/a"
        rows.append(
            [
                m.label,
                f"{r.rps:,.0f}",
                ratio,
                _ms(r.p50_ms),
                _ms(r.p99_ms),
                *(_pct(v) for v in (cpu.server_pct, cpu.postgres_pct, cpu.wrk_pct)),
                _pct(cpu.other_pct),
                _pct(cpu.busy_pct),
            ]
        )
    headings = [what, "requests/s", "against WORKERS=1 on any CPU", "p50", "p99"]
    cpu_headings = ["CPU: server (all processes)", "PostgreSQL", "wrk", "other"]
    busy = f"all, of {100 * cores}%"
    return table([*headings, *cpu_headings, busy], "lrrrrrrrrr", rows)


def _workers_summary(streams: Streams, cores: int) -> str:
    """The WORKERS=2 ratios, each with the CPU of its WORKERS=2 run: on a small machine,
    PostgreSQL and wrk take their share of the cores the second worker would use."""
    ratios, cpus = [], []
    for what, runs in (("GET", streams.workers), ("POST", streams.workers_post)):
        one, two = runs.get(WORKERS_1), runs.get(WORKERS_2)
        if one and two:
            ratios.append(f"{what} **{two.result.rps / one.result.rps:.2f}x**")
            cpus.append(f"{what}: {cpu_split(two.cpu)}; {two.cpu.busy_pct:.0f}% in all")
    if not ratios:
        return ""
    return (
        f"WORKERS=2 against WORKERS=1, both free to use every CPU: {', '.join(ratios)} "
        f"(target ≥ {WORKERS_SCALING}x). CPU over the WORKERS=2 runs, of the machine's {cores} "
        f"cores ({100 * cores}%): {'. '.join(cpus)}."
    )


def _workers(streams: Streams, cores: int) -> str:
    blocks = [
        "**WORKERS.** `GET /chats/{id}?limit=20` as above, no stream open, on this "
        "scenario's one-worker server (pinned), then on servers started with WORKERS=1 "
        "and WORKERS=2 free to run on every CPU (wrk and PostgreSQL stay where they were).",
        _workers_table("GET limit=20", streams.workers, cores),
    ]
    if streams.workers_post:
        blocks += [
            "Then the POST benchmark above (`POST /chats/{id}/messages/` over chats "
            f"1..{CHAT_COUNT:,}) on such servers, a new one for each run.",
            _workers_table("POST messages", streams.workers_post, cores),
        ]
    return "\n\n".join([*blocks, _workers_summary(streams, cores)])


def _streams(results: Results) -> str:
    streams = results.streams
    if streams is None:
        return ""
    return _section(
        "Live delivery: event streams",
        _streams_when(results, streams),
        f"A server of its own (`chatapi serve`, one worker, pinned as above, "
        f"`MAX_STREAMS={streams.streams}`); {streams.streams:,} streams "
        f"(`GET /chats/{{id}}/events`, no resume point) over chats 1..{streams.chats}, "
        f"{streams.streams / streams.chats:g} per chat, held by one asyncio process "
        "([bench/stream_client.py](../bench/stream_client.py)) on the client's CPU; all "
        f"were open {streams.open_s:.1f} s after it started.",
        _idle(streams),
        _delivery(streams),
        _post_with(streams),
        *(
            block
            for block in (
                report_streams.event_cpu(streams),
                report_streams.many_idle(streams),
                report_streams.never_reading(streams),
            )
            if block
        ),
        _workers(streams, int(results.machine["cores"])),
    )


def _replicas_when(replicas: Replicas) -> str:
    if replicas.alone:
        same = "by a `BENCH_ONLY=replicas` run; the other sections are from the run above"
    else:
        same = "in the same run as the sections above, after them"
    commit = replicas.code["commit"]
    changed = " plus uncommitted changes" if replicas.code["uncommitted"] else ""
    return f"Measured on {replicas.started_at} (commit `{commit}`{changed}), {same}."


def _replica_runs(replicas: Replicas) -> tuple[tuple[str, ReadsOn], ...]:
    return (
        ("the primary (`READ_DATABASE_URL` unset)", replicas.primary),
        ("the standby (`READ_DATABASE_URL`)", replicas.standby),
    )


def _replica_throughput(replicas: Replicas) -> str:
    base = replicas.primary.get.result.rps
    rows = []
    for label, reads in _replica_runs(replicas):
        r, cpu = reads.get.result, reads.get.cpu
        rows.append(
            [
                label,
                f"{r.rps:,.0f}",
                f"{r.rps / base:.2f}",
                _ms(r.p50_ms),
                _ms(r.p99_ms),
                *(_pct(v) for v in (cpu.server_pct, cpu.postgres_pct, cpu.standby_pct)),
                _pct(cpu.wrk_pct),
                _pct(cpu.other_pct),
            ]
        )
    headings = ["GET limit=20, reads on", "requests/s", "against the primary", "p50", "p99"]
    cpu_headings = ["CPU: server", "PostgreSQL primary", "standby", "wrk", "other"]
    ratio = replicas.standby.get.result.rps / base
    return "\n\n".join(
        [
            "**Throughput.** `GET /chats/{id}?limit=20` with wrk as in the GET benchmark above "
            "(no token sent), on a service reading from the primary, then on one reading from "
            "the standby.",
            table([*headings, *cpu_headings], "lrrrrrrrrr", rows),
            f"Reads on the standby against reads on the primary: **{ratio:.2f}x**.",
        ]
    )


def _replica_fresh(replicas: Replicas) -> str:
    rows = []
    for label, reads in _replica_runs(replicas):
        f = reads.fresh
        rows.append(
            [
                label,
                _ms(f.post.p50_ms),
                _ms(f.post.p99_ms),
                *(_ms(v) for v in (f.with_token.p50_ms, f.with_token.p90_ms)),
                *(_ms(v) for v in (f.with_token.p99_ms, f.with_token.max_ms)),
                f"{f.waited_out:,}",
                _ms(f.without_token.p50_ms),
                _ms(f.without_token.p99_ms),
            ]
        )
    headings = ["reads on", "POST p50", "POST p99", "GET with its token: p50", "p90", "p99"]
    more = ["max", f"≥ {replicas.replica_wait_s:g} s", "GET without: p50", "p99"]
    primary, standby = replicas.primary.fresh, replicas.standby.fresh
    stale = primary.stale + standby.stale
    shown = (
        "Every read with its token showed its POST."
        if stale == 0
        else f"**{stale:,} reads with their token did not show their POST** (a bug)."
    )
    cpu = ", ".join(
        f"{name} {_pct(getattr(primary.cpu, field))} / {_pct(getattr(standby.cpu, field))}"
        for name, field in (
            ("server", "server_pct"),
            ("PostgreSQL primary", "postgres_pct"),
            ("standby", "standby_pct"),
            ("the client", "wrk_pct"),
            ("other", "other_pct"),
        )
    )
    return "\n\n".join(
        [
            f"**A read right after a write.** {standby.with_token.samples:,} rounds on each "
            "service, from one client (this harness, on one keep-alive connection), in turn "
            f"over chats 1..{CHAT_COUNT:,}: `POST /chats/{{id}}/messages/`, then "
            "`GET /chats/{id}?limit=20` with the POST's `Consistency-Token` (the service on "
            "the primary alone gives none, and reads without), then the same GET "
            f"again at once without a token; each timed by the client, after {WARM_ROUNDS} "
            "untimed rounds. A read with its token that the standby had not replayed "
            f"within `REPLICA_WAIT` ({replicas.replica_wait_s:g} s) is served by the primary "
            "after that wait: the `≥` column counts the reads that took that long.",
            table([*headings, *more], "lrrrrrrrrr", rows),
            f"What the token costs a read on the standby, against the same read on the "
            f"primary: p50 **{standby.with_token.p50_ms - primary.with_token.p50_ms:+.2f} ms**,"
            f" p99 **{standby.with_token.p99_ms - primary.with_token.p99_ms:+.2f} ms**. "
            f"{shown} CPU over the timed rounds, in % of one core, reads on the primary / on "
            f"the standby: {cpu}.",
        ]
    )


def _replica_settings(replicas: Replicas) -> str:
    names = list(dict.fromkeys([*replicas.primary_settings, *replicas.standby_settings]))

    def value(settings: dict[str, str], name: str) -> str:
        found = settings.get(name)
        return "n/a" if found is None else f"`{found}`" if found else "(empty)"

    rows = [
        [
            f"`{name}`",
            value(replicas.primary_settings, name),
            value(replicas.standby_settings, name),
        ]
        for name in names
    ]
    return table(["setting", "primary", "standby"], "lll", rows)


def _replicas(results: Results) -> str:
    replicas = results.replicas
    if replicas is None:
        return ""
    pins = results.pinning
    where = f"on CPU {pins['postgres']}, beside the primary" if pins["server"] else "unpinned"
    return _section(
        "Reads from a streaming replica",
        _replicas_when(replicas),
        "A hot standby of the run's cluster, made with `pg_basebackup -R -X stream` "
        f"({replicas.database_mb:,.0f} MB; streaming {replicas.base_backup_s:.1f} s after the "
        f"copy started) and started on the stock `postgresql.conf`, {where}: a standby on "
        "the same CPUs adds no capacity here, so what these runs show is what reading from "
        f"it costs. Replication as the primary reports it: {replicas.replication}. Two "
        "services of their own (`chatapi serve`, one worker, pinned as above), one after the "
        "other: the first reading from the primary, the second with `READ_DATABASE_URL` the "
        f"standby and `REPLICA_WAIT={replicas.replica_wait_s:g}`. The scenarios took "
        f"{replicas.total_s:.0f} s in all, the copy included.",
        _replica_throughput(replicas),
        _replica_fresh(replicas),
        "Settings, primary and standby:",
        _replica_settings(replicas),
    )


def _auth_when(found: Auth) -> str:
    if found.alone:
        same = "by a `BENCH_ONLY=auth` run; the other sections are from the run above"
    else:
        same = "in the same run as the sections above, after them"
    commit = found.code["commit"]
    changed = " plus uncommitted changes" if found.code["uncommitted"] else ""
    return f"Measured on {found.started_at} (commit `{commit}`{changed}), {same}."


def _auth_setup(found: Auth) -> str:
    return (
        f"{found.added_chats:,} chats added to the run's database, for {found.chats:,} in all: "
        "each with one message and, as the service's own projections would have left them, "
        f"its rows in `chat_views` and one row per member in `chat_member_views`; two "
        f"members each (of {auth.BACKGROUND_USERS:,} users), activity spread over a year. A "
        f"user in {found.few_chats:,} of them and one in {found.many_chats:,}, spread "
        f"evenly; a chat of {auth.PAIR_MEMBERS} members and one of {found.crowd_members:,}; "
        f"the user of the GET and POST runs a member of chats 1..{CHAT_COUNT:,} and of those "
        f"two: {found.member_rows:,} rows in `chat_member_views`, of {found.users:,} users, "
        f"loaded, VACUUM ANALYZEd and CHECKPOINTed in {found.load_s:.1f} s. Two services "
        "of their own (`chatapi serve`, one worker, pinned as above), up at once, with the "
        "same settings but `AUTH_MODE`: `none` and `required` (`AUTH_JWT_SECRET` a random "
        "secret of the run, given to both). User tokens are HS256 JWTs (`sub`, "
        f"`aud={auth.AUDIENCE}`, `exp`), sent by wrk in every request's `Authorization` "
        "header ([bench/lua/common.lua](../bench/lua/common.lua)). Each comparison is "
        f"measured in turns, A, B, A, B, ..., A: {len(found.get20.other)} runs of B, each "
        "compared with the mean of the A runs just before and just after it (so a steady "
        "drift of the machine cancels), every wrk run after its own warm-up as above; a "
        "comparison's ratio is the median of its rounds' ratios. The "
        "idle service reads the hints each POST sends to every process: its CPU is the "
        f"`idle service` column. The scenarios took {found.total_s:.0f} s in all, the "
        "loading included."
    )


def _turn_rows(
    turns: Turns, against: Callable[[Measurement], float], extra: Sequence[Measurement] = ()
) -> list[list[str]]:
    """The runs in the order measured: round by round base, other (then `extra`'s run of
    that round), then the closing base run; each other run with its round's ratio by
    `against` (targets.turn_ratios), each extra run with the same base."""
    ratios = turn_ratios(turns, against)
    rounds = len(turns.other)
    rows = []
    for index, base in enumerate(turns.base):
        runs: list[tuple[Measurement, str]] = [(base, "base")]
        if index < rounds:
            ratio = ratios[index]
            runs.append((turns.other[index], f"{ratio:.2f}"))
            if index < len(extra):
                # Against the same base as its round's other run.
                scale = against(extra[index]) / against(turns.other[index])
                runs.append((extra[index], f"{ratio * scale:.2f}"))
        round_ = str(index + 1) if index < rounds else "closing"
        for m, shown in runs:
            r, cpu = m.result, m.cpu
            rows.append(
                [
                    m.label,
                    round_,
                    f"{r.rps:,.0f}",
                    shown,
                    _ms(r.p50_ms),
                    _ms(r.p99_ms),
                    *(_pct(v) for v in (cpu.server_pct, cpu.postgres_pct, cpu.wrk_pct)),
                    _pct(cpu.clients_pct),
                    _pct(cpu.other_pct),
                ]
            )
    return rows


def _turn_table(turns: Turns, ratio: str, extra: Sequence[Measurement] = ()) -> str:
    against = rps if "requests/s" in ratio else p50
    headings = ["run", "round", "requests/s", ratio, "p50", "p99", "CPU: server", "PostgreSQL"]
    headings += ["wrk", "idle service", "other"]
    return table(headings, "lrrrrrrrrrr", _turn_rows(turns, against, extra))


def _median(turns: Turns, value: Callable[[Measurement], float], bound: float = 0.0) -> str:
    """The median of the rounds' ratios, to the decimals that tell it from `bound`."""
    rounds = ", ".join(f"{r:.2f}" for r in turn_ratios(turns, value))
    ratio = median_ratio(turns, value)
    shown = ratio_text(ratio, bound) if bound else f"{ratio:.2f}x"
    return f"**{shown}** (rounds {rounds})"


def _median_p50(runs: Sequence[Measurement] | Sequence[Latency]) -> float:
    values = [m.result.p50_ms if isinstance(m, Measurement) else m.p50_ms for m in runs]
    return statistics.median(values) if values else math.nan


def _auth_token(found: Auth) -> str:
    return "\n\n".join(
        [
            "**A user token against AUTH_MODE=none.** `GET /chats/{id}?limit=20`, then "
            f"`POST /chats/{{id}}/messages/`, over chats 1..{CHAT_COUNT:,} as in the runs "
            "above: on the `AUTH_MODE=none` service without a header, then on the "
            "`AUTH_MODE=required` one with the token of a user who is a member of every one "
            "of those chats (so every request is allowed: a user's GET reads the chat only "
            "if a member row says so, a user's POST updates it only if one does).",
            _turn_table(found.get20, "against AUTH_MODE=none, requests/s"),
            _turn_table(found.post_message, "against AUTH_MODE=none, requests/s"),
            f"With a user token, against `AUTH_MODE=none`: `GET /chats/{{id}}?limit=20` "
            f"{_median(found.get20, rps, AUTH_SHARE)}, `POST /chats/{{id}}/messages/` "
            f"{_median(found.post_message, rps, AUTH_SHARE)} (target ≥ {AUTH_SHARE}x). "
            f"p50, medians of the rounds: GET {_ms(_median_p50(found.get20.base))} without, "
            f"{_ms(_median_p50(found.get20.other))} with; POST "
            f"{_ms(_median_p50(found.post_message.base))} without, "
            f"{_ms(_median_p50(found.post_message.other))} with.",
        ]
    )


def _loop_rows(found: Auth) -> list[list[str]]:
    rows = []
    for index, (few, many) in enumerate(
        zip(found.list_loop_few, found.list_loop_many, strict=True)
    ):
        for count, loop in ((found.few_chats, few), (found.many_chats, many)):
            rows.append(
                [
                    f"user in {count:,} chats",
                    str(index + 1),
                    f"{loop.samples:,}",
                    *(_ms(v) for v in (loop.p50_ms, loop.p90_ms, loop.p99_ms, loop.max_ms)),
                ]
            )
    return rows


def _plan_line(which: str, read: IndexRead) -> str:
    if not read.index:
        return f"for the user in {which}: no index scan of `{read.relation}` (**{read.node}**)"
    return (
        f"for the user in {which}: **{read.node}** on `{read.index}`, **{read.rows:,} rows**, "
        f"{read.execution_ms:.3f} ms"
    )


def _auth_list(found: Auth) -> str:
    few, many = f"{found.few_chats:,} chats", f"{found.many_chats:,} chats"
    loop_ratio = _median_p50(found.list_loop_many) / _median_p50(found.list_loop_few)
    short = _median_p50(found.chat_list_short) / _median_p50(found.chat_list.base)
    plans = found.list_plans
    lines = [
        _plan_line(which, plans[key])
        for key, which in (("many", many), ("few", few))
        if key in plans
    ]
    blocks = [
        f"**A user's chat list, by how many chats they are in.** `GET /chats/?limit=20` on "
        f"the `AUTH_MODE=required` service (`get_page.lua`), as the user in {few} (who gets "
        f"{found.few_chats:,} chats), then as the user in {many} (20 chats, and a "
        f"`next_cursor`), then as that user with `limit={found.few_chats}`, for an answer as "
        f"long as the first user's: a difference between the first two runs that the third "
        "does not show is the answer's length, not the reading.",
        _turn_table(found.chat_list, f"p50 against the user in {few}", found.chat_list_short),
        f"p50, the user in {many} against the user in {few}: "
        f"{_median(found.chat_list, p50, CHAT_LIST_SPREAD)} "
        f"(target within {CHAT_LIST_SPREAD}x); with `limit={found.few_chats}` "
        f"**{short:.2f}x** (medians of the rounds' p50s).",
        f"The same request one at a time from this harness, on one keep-alive connection, "
        f"after {auth.WARM_REQUESTS} untimed ones, each timed by the client; the users in "
        "turn, after each round's wrk runs:",
        table(
            ["user", "round", "requests", "p50", "p90", "p99", "max"], "lrrrrrr", _loop_rows(found)
        ),
        f"One at a time, p50 in {many} against in {few}: **{loop_ratio:.2f}x** (medians of "
        "the rounds' p50s).",
    ]
    if lines:
        blocks.append(
            "How PostgreSQL ran the service's user query (`queries/list_chats.py` "
            f"`MINE_FIRST`, limit {auth.PAGE + 1}: one more than the page tells whether "
            f"there is a next), `EXPLAIN (ANALYZE, BUFFERS)` before the runs: "
            + "; ".join(lines)
            + "."
        )
    if "many" in plans:
        blocks.append(
            f"<details>\n<summary>The plan, user in {many}</summary>\n\n```\n"
            f"{plans['many'].plan}\n```\n\n</details>"
        )
    return "\n\n".join(blocks)


def _projection_rows(found: Auth) -> list[list[str]]:
    rows = []
    for cost in found.projection.values():
        times = sorted(cost.execution_ms)
        rows.append(
            [
                f"chat {cost.chat_id}",
                f"{cost.members:,}",
                f"{cost.rows:,}",
                f"{len(times)}",
                _ms(statistics.median(times) if times else math.nan),
                _ms(times[0] if times else math.nan),
                _ms(times[-1] if times else math.nan),
            ]
        )
    return rows


def _auth_members(found: Auth) -> str:
    costs = list(found.projection.values())
    pair, crowd = found.post_members.base, found.post_members.other
    medians = [statistics.median(c.execution_ms) if c.execution_ms else math.nan for c in costs]
    blocks = [
        f"**A post, by the members of its chat.** `POST /chats/{{id}}/messages/` with the "
        f"token of a member, all requests to one chat: the chat of {auth.PAIR_MEMBERS} "
        f"members, then the one of {found.crowd_members:,}. Every post copies its time to "
        "each member's row of `chat_member_views` (`infrastructure/projections.py` "
        "`MOVE_FOR_MEMBERS`, in the post's transaction, one statement with the chat view's "
        "update).",
        _turn_table(found.post_members, f"against the {auth.PAIR_MEMBERS}-member chat, requests/s"),
        f"POST throughput in the {found.crowd_members:,}-member chat against the "
        f"{auth.PAIR_MEMBERS}-member one: {_median(found.post_members, rps)}; p50 "
        f"{_ms(_median_p50(crowd))} against {_ms(_median_p50(pair))} (medians of the "
        "rounds).",
        "PostgreSQL's time for the per-member statement (`UPDATE chat_member_views SET "
        "last_activity_at = ... WHERE chat_id = ...`), `EXPLAIN ANALYZE` on each chat in "
        "turn before the POST runs, each run rolled back:",
        table(
            ["chat", "members", "rows updated", "runs", "median", "fastest", "slowest"],
            "lrrrrrr",
            _projection_rows(found),
        ),
    ]
    if costs:
        crowded = costs[-1]
        blocks.append(
            f"<details>\n<summary>The plan, {crowded.members:,}-member chat</summary>\n\n"
            f"```\n{crowded.plan}\n```\n\n</details>"
        )
    if len(costs) == 2:
        blocks.append(
            "**The choice.** A user's chat list reads one row per chat they are in, kept in "
            "the order of the chat's last activity: every post writes its time to every "
            "member's row, so that the list is an index range read of `limit` entries, flat "
            "for any user however many chats they are in (the list runs above). The price is "
            "paid by the writer, and grows with the members per chat: a post in the "
            f"{costs[1].members:,}-member chat updates {costs[1].rows:,} rows (and their "
            f"index entries), {_ms(medians[1])} of PostgreSQL's time against "
            f"{_ms(medians[0])} for {costs[0].members}, on top of the rest of the post. "
            "The other way, one row per chat read through the user's memberships, would "
            "make the post cheap and the list of a user in many chats read and sort all of "
            "them."
        )
    return "\n\n".join(blocks)


def _auth_profiles(results: Results) -> str:
    taken = [p for p in results.profiles if p.name in auth.PROFILE_NAMES]
    if not taken:
        return ""
    links = ", ".join(f"{p.label} ([{p.svg}]({p.svg}))" for p in taken)
    return (
        f"Profiled with py-spy where a target here was missed (a throughput target on both "
        f"services, under the same load): {links}; their top frames are under the "
        "profiles below."
    )


def _auth_disturbed(found: Auth) -> str:
    """The runs that other load on the machine disturbed, as the main runs' are noted."""
    runs: list[tuple[str, Measurement]] = []
    for turns, extra in (
        (found.get20, []),
        (found.post_message, []),
        (found.chat_list, found.chat_list_short),
        (found.post_members, []),
    ):
        rounds = len(turns.other)
        for side in (turns.base, turns.other, extra):
            for index, m in enumerate(side):
                round_ = f"round {index + 1}" if index < rounds else "closing"
                runs.append((f"{m.label}, {round_}", m))
    disturbed = [(name, m) for name, m in runs if m.cpu.other_pct >= DISTURBED_PCT]
    if not disturbed:
        return ""
    names = "; ".join(f"{name} ({m.cpu.other_pct:.0f}%)" for name, m in disturbed)
    return (
        f"**Other load** on the machine ({DISTURBED_PCT:g}% of a core or more outside the "
        f"benchmark's processes, after the retries) during {len(disturbed)} of these "
        f"{len(runs)} runs: {names}. Their numbers, and the ratios of their rounds, are "
        "disturbed."
    )


def _auth(results: Results) -> str:
    found = results.auth
    if found is None:
        return ""
    return _section(
        "Identity and access",
        _auth_when(found),
        _auth_setup(found),
        _auth_token(found),
        _auth_list(found),
        _auth_members(found),
        _auth_disturbed(found),
        _auth_profiles(results),
    )


def _profile(p: Profile) -> str:
    summary = p.summary
    packages = ", ".join(f"{name} {pct:.0f}%" for name, pct in summary.by_package)
    rows = []
    for index, (frame, pct) in enumerate(summary.top_self):
        own = summary.project[index] if index < len(summary.project) else None
        rows.append(
            [f"`{frame}`", f"{pct:.1f}", *((f"`{own[0]}`", f"{own[1]:.1f}") if own else ("", ""))]
        )
    headings = ["running frame", "%", "this project's frames, on stack", "%"]
    return "\n\n".join(
        [
            f"**{p.label}** ([{p.svg}]({p.svg}), {summary.samples:,} samples, {p.rps:,.0f} "
            "requests/s under the profiler)",
            f"Running, by package: {packages}.",
            table(headings, "lrlr", rows),
        ]
    )


def _profiles(results: Results) -> str:
    if not results.profiles:
        return ""
    return _section(
        "Profiles of the missed targets",
        "How they are taken and read, what they led to, what was changed and measured, and "
        "what was tried and left: [performance.md](performance.md).",
        *map(_profile, results.profiles),
    )


def _knobs() -> str:
    rows = [[f"`{knob.variable}`", knob.default, knob.meaning] for knob in knobs()]
    return table(["variable", "default", "meaning"], "lrl", rows)


# --- the page --------------------------------------------------------------------------------


def markdown(results: Results, targets: list[Target]) -> str:
    floor = results.endpoints["floor"].result
    get20 = results.endpoints.get("get20")
    page = Template(TEMPLATE.read_text()).substitute(
        started_at=results.started_at,
        minutes=f"{results.total_s / 60:.1f}",
        code=_code(results),
        targets=table(
            ["target", "measured", "verdict"],
            "lrc",
            ([t.goal, t.measured, f"**{t.verdict}**"] for t in targets),
        ),
        machine=_machine(results),
        postgres=table(
            ["setting", "value"], "ll", ([f"`{k}`", v] for k, v in results.postgres.items())
        ),
        this_run=_this_run(results),
        example=_command(get20.result, "http://127.0.0.1:$PORT") if get20 else "",
        endpoints=_endpoints(results),
        floor_rps=f"{floor.rps:,.0f}",
        floor_p50=_ms(floor.p50_ms),
        floor_p99=_ms(floor.p99_ms),
        make_run=_make_run(results),
        paging=_paging(results),
        sizes=_sizes(results),
        plans=_plans(results),
        deletes=report_deletes.section(results),
        postgres_log=report_deletes.whole_run(results),
        soak=_soak(results),
        streams=_streams(results),
        replicas=_replicas(results),
        auth=_auth(results),
        profiles=_profiles(results),
        observations="\n".join(f"- {note}" for note in observations.notes(results)),
        knobs=_knobs(),
    )
    # A section the run has no data for is empty: drop the blank lines left in its place.
    return re.sub(r"\n{3,}", "\n\n", page)


def main(argv: list[str]) -> int:
    """Renders benchmarks.md again beside a saved benchmarks.json."""
    if len(argv) != 1:
        print("usage: python -m bench.report docs/benchmarks.json", file=sys.stderr)
        return 2
    saved = Path(argv[0])
    results = load(saved)
    (saved.parent / "benchmarks.md").write_text(markdown(results, evaluate(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
