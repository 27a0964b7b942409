"""Writes docs/benchmarks.{md,json,png} from a run's results."""

import dataclasses
import json
import math
import shlex
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.dataset import (
    BIG_CHAT_MESSAGES,
    CHAT_COUNT,
    CHAT_OF_SIZE,
    MESSAGES_PER_CHAT,
    POOL_MESSAGES,
    SMALL_CHAT_MESSAGES,
)
from bench.paging import (
    CHATS_DEEP,
    CHATS_FIRST,
    HISTORY_DEEP,
    HISTORY_NEWEST,
    PAGE_LIMIT,
    WALK_LIMIT,
)
from bench.results import Measurement, Paging, Profile, Results
from bench.targets import Target
from bench.wrk import LUA_DIR, WrkResult

ROOT = LUA_DIR.parent.parent
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
SHORT_LABELS = {
    "floor": "floor",
    "get20": "GET\nlimit=20",
    "get100": "GET\nlimit=100",
    CHATS_FIRST: "chat list\nfirst page",
    HISTORY_NEWEST: "history\nnewest",
    "post_chat": "POST\n/chats/",
    "post_message": "POST\nmessages",
    "delete": "DELETE\n/chats/{id}",
}


def write(results: Results, targets: list[Target], docs: Path) -> None:
    docs.mkdir(exist_ok=True)
    raw = {**dataclasses.asdict(results), "targets": [_target_json(t) for t in targets]}
    (docs / "benchmarks.json").write_text(json.dumps(raw, indent=2, default=str) + "\n")
    plot(results, docs / "benchmarks.png")
    (docs / "benchmarks.md").write_text(markdown(results, targets))


def _target_json(target: Target) -> dict[str, object]:
    return {
        "key": target.key,
        "goal": target.goal,
        "measured": target.measured,
        "verdict": target.verdict,
    }


# --- the plot ------------------------------------------------------------------------------


def _short_label(results: Results, name: str) -> str:
    """The bar's label; the deep pages' say how deep they are."""
    paged = results.paging
    if name == CHATS_DEEP and paged:
        return f"chat list\n{paged.chat_list_depth:,} in"
    if name == HISTORY_DEEP and paged:
        return f"history\n{paged.history_back:,} back"
    return SHORT_LABELS.get(name, name)


def plot(results: Results, path: Path) -> None:
    fig, (throughput, sizes) = plt.subplots(
        1, 2, figsize=(16, 5.6), gridspec_kw={"width_ratios": [3, 2]}
    )
    names = [name for name in ENDPOINT_ORDER if name in results.endpoints]
    rps = [results.endpoints[name].result.rps for name in names]
    floor = results.endpoints["floor"].result.rps
    colors = ["#9e9e9e" if name == "floor" else "#1f77b4" for name in names]
    bars = throughput.bar([_short_label(results, name) for name in names], rps, color=colors)
    throughput.tick_params(axis="x", labelsize=8)
    for bar, value in zip(bars, rps, strict=True):
        throughput.annotate(
            f"{value:,.0f}\n{value / floor:.2f}x",
            (bar.get_x() + bar.get_width() / 2, value),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    for share, style, label in ((0.5, "--", "GET target"), (0.33, ":", "POST target")):
        throughput.axhline(
            floor * share,
            color="#d62728",
            linestyle=style,
            linewidth=1,
            label=f"{label}: {share}x floor",
        )
    throughput.legend(loc="upper right", fontsize=8)
    throughput.set_ylabel("requests/s (one uvicorn worker)")
    throughput.set_ylim(0, max(rps) * 1.2)
    throughput.set_title("Throughput per endpoint, against the floor")

    sizes.set_xscale("log")
    for kind, marker in (("get", "o"), ("post", "s")):
        runs = results.chat_size.get(kind, {})
        points = sorted((int(size), m.result.p50_ms) for size, m in runs.items())
        if points:
            xs, ys = zip(*points, strict=True)
            label = "GET limit=20" if kind == "get" else "POST message"
            sizes.plot(xs, ys, marker=marker, label=label)
            for x, y in points:
                sizes.annotate(
                    f"{y:.2f} ms", (x, y), textcoords="offset points", xytext=(0, 6), fontsize=8
                )
    sizes.set_xticks(list(CHAT_OF_SIZE), [f"{size:,}" for size in CHAT_OF_SIZE])
    sizes.set_ylim(bottom=0, top=sizes.get_ylim()[1] * 1.1)
    sizes.set_xlabel("messages in the chat (all requests on that one chat)")
    sizes.set_ylabel("p50 latency, ms")
    sizes.set_title("p50 latency against chat size")
    sizes.legend()
    sizes.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- the page ------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f} ms"


def _command(result: WrkResult, url: str) -> str:
    words = [word.replace(str(ROOT) + "/", "") for word in result.command]
    words = [url if word.startswith("http://") else word for word in words]
    words[0 if words[0] != "taskset" else 3] = "wrk"
    return shlex.join(words)


def _endpoint_rows(results: Results) -> list[str]:
    floor = results.endpoints["floor"].result.rps
    rows = [
        "| endpoint | requests/s | share of floor | p50 | p99 | CPU: server | PostgreSQL "
        "| wrk | other |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ENDPOINT_ORDER:
        if name in results.endpoints:
            m = results.endpoints[name]
            r, cpu = m.result, m.cpu
            rows.append(
                f"| {m.label} | {r.rps:,.0f} | {r.rps / floor:.2f} | {_ms(r.p50_ms)} | "
                f"{_ms(r.p99_ms)} | {cpu.server_pct:.0f}% | {cpu.postgres_pct:.0f}% | "
                f"{cpu.wrk_pct:.0f}% | {cpu.other_pct:.0f}% |"
            )
    return rows


def _size_rows(results: Results) -> list[str]:
    rows = [
        "| messages in the chat | GET p50 | GET p99 | GET req/s | POST p50 | POST p99 | "
        "POST req/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in CHAT_OF_SIZE:
        cells = [f"{size:,}"]
        for kind in ("get", "post"):
            m = results.chat_size.get(kind, {}).get(str(size))
            if m is None:
                cells += ["n/a"] * 3
            else:
                r = m.result
                cells += [_ms(r.p50_ms), _ms(r.p99_ms), f"{r.rps:,.0f}"]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _paging_method(paging: Paging | None) -> list[str]:
    if paging is None:
        return []
    return [
        f"- `GET /chats/?limit={PAGE_LIMIT}` (chats by last activity) and "
        f"`GET /chats/{{id}}/messages/?limit={PAGE_LIMIT}` (history): `get_page.lua`, the same "
        "request every time, run right after the GETs above and before any write. The chat "
        f"list's first page (no cursor) and the page after its first "
        f"{paging.chat_list_depth:,} chats (of {paging.chats:,}), at the `next_cursor` that "
        f"walking the list with limit={WALK_LIMIT} reached just before the runs; the "
        f"{BIG_CHAT_MESSAGES:,}-message chat's newest page (no `before`) and the page just "
        f"older than its message {paging.history_back:,} back (id "
        f"{paging.history_message_id}, found with SQL, its cursor made by the service's own "
        "`queries.cursors.encode_history`). Each page is read once before its runs and "
        f"checked to be a full page of {PAGE_LIMIT}.",
    ]


def _paging_lines(results: Results) -> list[str]:
    """The deep pages' p50 against the first (or newest) page's, per listing."""
    paging, endpoints = results.paging, results.endpoints
    names = (CHATS_FIRST, CHATS_DEEP, HISTORY_NEWEST, HISTORY_DEEP)
    if paging is None or any(name not in endpoints for name in names):
        return []
    chats_first, chats_deep, newest, deep = (endpoints[name].result for name in names)
    chat = paging.history_chat
    return [
        "### Paging: deep pages against the first",
        "",
        "| listing | first page p50 | deep page | deep page p50 | deep / first |",
        "|---|---:|---|---:|---:|",
        f"| `GET /chats/` | {_ms(chats_first.p50_ms)} | after {paging.chat_list_depth:,} of "
        f"{paging.chats:,} chats | {_ms(chats_deep.p50_ms)} | "
        f"{chats_deep.p50_ms / chats_first.p50_ms:.2f}x |",
        f"| `GET /chats/{chat}/messages/` ({BIG_CHAT_MESSAGES:,} messages) | "
        f"{_ms(newest.p50_ms)} | {paging.history_back:,} messages back | {_ms(deep.p50_ms)} | "
        f"{deep.p50_ms / newest.p50_ms:.2f}x |",
        "",
        "The deep pages' requests, as wrk sent them:",
        "",
        "```",
        paging.paths[CHATS_DEEP],
        paging.paths[HISTORY_DEEP],
        "```",
        "",
    ]


def _code_line(results: Results) -> str:
    code = results.code
    line = f"The service measured: commit `{code['commit']}` ({code['subject']})"
    if code["uncommitted"]:
        files = ", ".join(f"`{name}`" for name in code["uncommitted"][:8])
        more = len(code["uncommitted"]) - 8
        line += f", plus uncommitted changes to {files}" + (f" and {more} more" if more > 0 else "")
    return line + "."


def _plan_lines(results: Results) -> list[str]:
    """The GET statement's plan per chat size, as PostgreSQL ran it after the GET runs."""
    if not results.get_plans:
        return []
    lines = [
        "How PostgreSQL ran the service's GET statement (`queries.get_chat`, limit=20) on "
        "each of these chats, right after their GET runs (`EXPLAIN (ANALYZE, BUFFERS)`):",
        "",
    ]
    for size, plan in results.get_plans.items():
        lines += [
            "<details>",
            f"<summary>{int(size):,}-message chat</summary>",
            "",
            "```",
            plan,
            "```",
            "",
            "</details>",
            "",
        ]
    return lines


def _profile_lines(p: Profile) -> list[str]:
    summary = p.summary
    packages = ", ".join(f"{name} {pct:.0f}%" for name, pct in summary.by_package)
    lines = [
        f"**{p.label}** ([{p.svg}]({p.svg}), {summary.samples:,} samples, "
        f"{p.rps:,.0f} requests/s under the profiler)",
        "",
        f"Running, by package: {packages}.",
        "",
        "| running frame | % | this project's frames, on stack | % |",
        "|---|---:|---|---:|",
    ]
    for index, (frame, pct) in enumerate(summary.top_self):
        own = summary.project[index] if index < len(summary.project) else None
        right = f"`{own[0]}` | {own[1]:.1f}" if own else " | "
        lines.append(f"| `{frame}` | {pct:.1f} | {right} |")
    return [*lines, ""]


def _grown(results: Results, size: int) -> str:
    """How many messages the chat of that size had after the POST runs."""
    count = results.chat_size_after_posts.get(str(size))
    return "?" if count is None else f"{count:,}"


def _observations(results: Results) -> list[str]:
    notes = []
    measurements: list[Measurement] = list(results.endpoints.values())
    for runs in results.chat_size.values():
        measurements += runs.values()
    busiest = max(measurements, key=lambda m: m.cpu.wrk_pct)
    if busiest.cpu.wrk_pct < 80:
        notes.append(
            f"wrk used at most {busiest.cpu.wrk_pct:.0f}% of a core ({busiest.label}): the "
            "load generator was not the bottleneck."
        )
    else:
        notes.append(
            f"wrk used {busiest.cpu.wrk_pct:.0f}% of a core ({busiest.label}): it may have "
            "been the bottleneck there."
        )
    pins = results.pinning
    if pins["client"] and pins["client"] == pins["postgres"]:
        full = [m for m in measurements if m.cpu.wrk_pct + m.cpu.postgres_pct >= 90]
        if full:
            notes.append(
                "The core that wrk and PostgreSQL share was (nearly) full during: "
                f"{', '.join(m.label for m in full)}."
            )
    database_bound = [m for m in measurements if m.cpu.postgres_pct >= 90]
    if database_bound:
        names = ", ".join(f"{m.label} ({m.cpu.postgres_pct:.0f}%)" for m in database_bound)
        notes.append(
            f"PostgreSQL used a whole core during: {names}: there the database, not the "
            "Python worker, sets the pace (see the query plans above)."
        )
    idle = [m for m in measurements if m.name != "floor" and m.cpu.server_pct < 85]
    if idle:
        names = ", ".join(f"{m.label} ({m.cpu.server_pct:.0f}%)" for m in idle)
        notes.append(
            f"The server's core was not saturated during: {names}. There the server waits "
            "(on PostgreSQL, on row locks or on its own threads) rather than computes."
        )
    disturbed = [m for m in measurements if m.cpu.other_pct >= 10 or m.cpu.steal_pct >= 5]
    if disturbed:
        names = ", ".join(
            f"{m.label} ({m.cpu.other_pct:.0f}% other, {m.cpu.steal_pct:.0f}% steal)"
            for m in disturbed
        )
        notes.append(
            f"**Other load** on the machine (processes outside this benchmark, or CPU stolen "
            f"by the hypervisor) during: {names}. Those numbers are disturbed."
        )
    else:
        notes.append(
            "No other load on the machine during the measured runs (under 10% of a core "
            "outside the server, PostgreSQL and wrk; under 5% stolen by the hypervisor)."
        )
    repeated = results.config.get("runs_repeated") or []
    if repeated:
        notes.append(
            f"{len(repeated)} measured runs were repeated because of other load "
            f"({', '.join(sorted(set(repeated)))}); "
            f"the run spent {results.config.get('quiet_waited_s', 0)} s waiting for quiet."
        )
    before = results.machine.get("busy_cores_before", 0.0)
    if before >= 0.15:
        notes.append(f"The machine was {100 * before:.0f}% busy (of one core) before the run.")
    pool = results.config.get("delete_pool_grown_by") or []
    if pool:
        notes.append(f"The DELETE pool was grown during the run by {sum(pool):,} chats.")
    return notes


def markdown(results: Results, targets: list[Target]) -> str:
    machine, config, dataset = results.machine, results.config, results.dataset
    floor = results.endpoints["floor"]
    pins = results.pinning
    packages = ", ".join(f"{name} {version}" for name, version in machine["packages"].items())
    pg_rows = "\n".join(f"| `{name}` | {value} |" for name, value in results.postgres.items())
    d = config["duration"]
    w = config["warmup"]
    c = config["connections"]
    t = config["threads"]
    get20 = results.endpoints.get("get20")
    example = _command(get20.result, "http://127.0.0.1:$PORT") if get20 else ""
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `make bench` ([bench/run.py](../bench/run.py)) on {results.started_at}; "
        f"the whole run took {results.total_s / 60:.1f} minutes. Everything on this page "
        "comes from that one run and is rewritten by the next: the raw numbers, wrk's own "
        "output included, are in [benchmarks.json](benchmarks.json).",
        "",
        _code_line(results),
        "",
        "![Throughput per endpoint against the floor; p50 latency against chat size]"
        "(benchmarks.png)",
        "",
        "## Targets",
        "",
        "| target | measured | verdict |",
        "|---|---:|:---:|",
        *(f"| {t_.goal} | {t_.measured} | **{t_.verdict}** |" for t_ in targets),
        "",
        "The targets are measured and reported here, not asserted by the test suite.",
        "",
        "## Machine",
        "",
        f"- CPU: {machine['cpu_model']}, {machine['cores']} cores "
        f"(reported at {machine['cpu_mhz']} MHz), {machine['memory_gib']} GiB of memory; "
        f"{machine['os']}, Linux {machine['kernel']}. A virtual machine: other tenants can "
        "move the numbers by a few per cent from one run to the next.",
        f"- Python {machine['python']}; {packages}.",
        f"- {machine['wrk']}.",
        f"- Servers: one uvicorn worker each, event loop {machine['event_loop']}, HTTP "
        f"parser {machine['http']} (uvicorn's `auto` choice, the same for the service and "
        "the floor), no access log.",
        "",
        "PostgreSQL: a throwaway cluster made by `initdb` for this run and removed after it, "
        "started with the stock `postgresql.conf` (only `listen_addresses`, `port` and the "
        "socket directory given): default durability, every commit flushed to disk.",
        "",
        "| setting | value |",
        "|---|---|",
        pg_rows,
        "",
        "## Method",
        "",
        "**Dataset**, loaded with set-based SQL (`generate_series`, `INSERT ... SELECT`; "
        "per-row foreign-key triggers off for the load only) into a database migrated by "
        "`infrastructure.migrations.upgrade`, then `infrastructure.rebuild."
        "rebuild_read_models`, `VACUUM ANALYZE` and a `CHECKPOINT`:",
        "",
        f"- {CHAT_COUNT:,} chats (ids 1..{CHAT_COUNT}) x {MESSAGES_PER_CHAT:,} messages, "
        "their messages interleaved in id order as if all chats were active at once;",
        f"- chat {CHAT_OF_SIZE[BIG_CHAT_MESSAGES]} with {BIG_CHAT_MESSAGES:,} messages and "
        f"chat {CHAT_OF_SIZE[SMALL_CHAT_MESSAGES]} with {SMALL_CHAT_MESSAGES};",
        f"- a pool of {dataset.pool_last - dataset.pool_first + 1:,} chats "
        f"({dataset.pool_first}..{dataset.pool_last}) with {POOL_MESSAGES} messages each, "
        "for the DELETE benchmark, which deletes each of them at most once;",
        "- a message's `created_at` grows with its id, so within a chat it grows with id.",
        "",
        f"{dataset.chats:,} chats and {dataset.messages:,} messages in all; loading took "
        f"**{dataset.total_s:.1f} s** (inserts {dataset.insert_s:.1f} s, read model rebuild "
        f"{dataset.rebuild_s:.1f} s, VACUUM ANALYZE and CHECKPOINT {dataset.vacuum_s:.1f} s).",
        "",
        "**Servers.** The service is `.venv/bin/chatapi serve` with `DATABASE_URL`, "
        "`HOST=127.0.0.1`, a free `PORT` and `ACCESS_LOG=false`: one uvicorn worker in the "
        "process itself, with its default pools (10 + 10 connections per engine). The floor, "
        "[bench/floor.py](../bench/floor.py), is a FastAPI app on the same stack with one "
        "plain `def` endpoint at the same path, answering every request with a precomputed "
        f"body: the bytes of a real `GET /chats/1?limit=20` response ({results.floor_body_bytes:,}"
        " bytes). Its throughput is what the stack can do when the endpoint does no work; "
        "each endpoint's throughput is reported as a ratio to it, measured in the same run.",
        "",
        "**Pinning.** "
        + (
            f"The server under test runs on CPU {pins['server']} (`taskset -c "
            f"{pins['server']}`), alone; wrk (and this harness) on CPU {pins['client']}, "
            f"PostgreSQL on CPU {pins['postgres']}. On a 2-core machine PostgreSQL shares its "
            "core with wrk: the service gets one whole core, and the CPU columns below show "
            "how busy each side was."
            if pins["server"]
            else "None (BENCH_PIN=0, or a single core): server, PostgreSQL and wrk share the CPUs."
        ),
        "",
        f"**Load.** wrk with `-t{t} -c{c} -d{d}s --timeout=30s --latency`, on loopback, "
        f"after an unmeasured {w} s warm-up run of the same script; each Lua script in "
        "[bench/lua/](../bench/lua) builds its requests and prints the run's counts and "
        "latency percentiles as JSON from wrk's `done()` hook. For example:",
        "",
        "```sh",
        example,
        "```",
        "",
        f"One wrk thread drives {c} connections: wrk spends a small fraction of a core on "
        "it (the `wrk CPU` column), so a second thread would only compete for the core "
        "with PostgreSQL. The machine's CPU time is accounted for every run; a run in which "
        "processes outside the benchmark used 10% of a core or more (the `other` column) "
        f"is measured again once the machine is quiet (up to {config['retries']} times, "
        "keeping the least disturbed). Any connect/read/write error, timeout or response "
        "of 400 or more "
        '(wrk\'s "Non-2xx or 3xx responses") in any run fails the whole bench run.',
        "",
        f"- `GET /chats/{{id}}?limit=20` and `limit=100`: `get.lua`, id uniform in "
        f"1..{CHAT_COUNT}; the floor gets the very same requests.",
        *_paging_method(results.paging),
        "- `POST /chats/`: `post_chat.lua`, a JSON title with `Content-Type: application/json`.",
        f"- `POST /chats/{{id}}/messages/`: `post_message.lua`, id uniform in 1..{CHAT_COUNT}.",
        "- `DELETE /chats/{id}`: `delete.lua` walks the pool, each id once (thread i of n "
        "takes every n-th); the pool is grown before a run if the rate seen in the warm-up "
        "could exhaust it, and a 404 (a pool run dry) would fail the run.",
        "- Chat size: the same GET (limit=20) and POST scripts with every request on one "
        f"chat, of {SMALL_CHAT_MESSAGES}, {MESSAGES_PER_CHAT:,} and {BIG_CHAT_MESSAGES:,} "
        "messages. The GETs run first; the POST runs then add to the chat they post to "
        f"(the 10-message chat had {_grown(results, SMALL_CHAT_MESSAGES)} messages after its "
        f"POST runs, the 1,000-message one {_grown(results, MESSAGES_PER_CHAT)}). The "
        f"10-message chat answers a limit=20 read with all its 10 messages, the others with "
        "20. "
        f"All {c} connections post to one chat, so they queue on its row lock: the p50 "
        "is mostly that queue.",
        "- Memory: the worker's `VmRSS` (from `/proc/<pid>/status`; `chatapi serve` runs "
        "uvicorn in its own process) after a warm-up of the soak mix, then after "
        f"{config['soak_requests']:,} more requests of it (`mixed.lua`: 70% GET limit=20, "
        "10% GET limit=100, 20% POST message, over the 1,000 chats).",
        f"- Deleting the big chat: a {config['delete_window']} s GET run over the 1,000 "
        "chats gives the normal p99; then the same GET run is started, "
        "`DELETE /chats/1001` is sent from a separate client after "
        f"1 s and timed by it, and the GET run is stopped 0.5 s after the delete returns. "
        "Its p99 is over the whole run, which the delete overlaps for the share given below.",
        "",
        "## Results",
        "",
        "### Throughput and latency per endpoint",
        "",
        *_endpoint_rows(results),
        "",
        f"The floor: **{floor.result.rps:,.0f} requests/s** (p50 {_ms(floor.result.p50_ms)}, "
        f"p99 {_ms(floor.result.p99_ms)}). CPU is in per cent of one core over the measured "
        "run: the server process (all its threads), all PostgreSQL processes, and wrk.",
        "",
        *_paging_lines(results),
        "### Latency against chat size",
        "",
        *_size_rows(results),
        "",
        *_plan_lines(results),
    ]
    if results.big_delete:
        b = results.big_delete
        lines += [
            "### Deleting the 1,000,000-message chat",
            "",
            f"`DELETE /chats/{b.chat_id}` answered **{b.status}** after "
            f"**{b.wall_s:.2f} s** (client wall time).",
            "",
            "| other chats' GETs (limit=20) | requests/s | p50 | p99 | max |",
            "|---|---:|---:|---:|---:|",
            f"| without a delete ({b.baseline.duration_s:.1f} s) | {b.baseline.rps:,.0f} | "
            f"{_ms(b.baseline.p50_ms)} | {_ms(b.baseline.p99_ms)} | {_ms(b.baseline.max_ms)} |",
            f"| while it runs ({b.during.duration_s:.1f} s, {b.overlap_pct:.0f}% overlapped) | "
            f"{b.during.rps:,.0f} | {_ms(b.during.p50_ms)} | {_ms(b.during.p99_ms)} | "
            f"{_ms(b.during.max_ms)} |",
            "",
            f"p99 during the delete: **{b.p99_ratio:.2f}x** normal. CPU during that run: "
            f"server {b.cpu.server_pct:.0f}%, PostgreSQL {b.cpu.postgres_pct:.0f}%, wrk "
            f"{b.cpu.wrk_pct:.0f}%, other {b.cpu.other_pct:.0f}% (of one core).",
            "",
        ]
    if results.soak:
        s = results.soak
        samples = ", ".join(f"{n:,}: {kib / 1024:.1f}" for n, kib in s.samples)
        lines += [
            "### Worker memory",
            "",
            f"RSS **{s.rss_before_kib / 1024:.1f} MiB** after the warm-up, "
            f"**{s.rss_after_kib / 1024:.1f} MiB** after {s.requests:,} more requests "
            f"({s.change_pct:+.1f}%), at {s.rps:,.0f} requests/s (CPU: server "
            f"{s.cpu.server_pct:.0f}%, PostgreSQL {s.cpu.postgres_pct:.0f}%, other "
            f"{s.cpu.other_pct:.0f}%). Readings along the way (requests: MiB): {samples}.",
            "",
        ]
    if results.profiles:
        lines += [
            "### Profiles of the missed targets",
            "",
            "py-spy (`--gil`: only the thread holding the GIL, i.e. what the worker's one "
            "Python core is busy with) sampled the server for 10 s while wrk drove the "
            "endpoint; the flame graphs are linked, the tables come from a raw recording of "
            "the 10 s just before. Shares are of the samples: of the frame (or package) being "
            "the one executing, and, for this project's own frames, of being anywhere on the "
            "stack. Time spent waiting with the GIL released (on PostgreSQL, on locks) does "
            "not show here.",
            "",
            "What these profiles led to, what was changed and measured, and what was tried "
            "and left: [performance.md](performance.md).",
            "",
        ]
        for p in results.profiles:
            lines += _profile_lines(p)
    lines += [
        "### Observations",
        "",
        *(f"- {note}" for note in _observations(results)),
        "",
        "## Reproduce",
        "",
        "```sh",
        "make bench",
        "```",
        "",
        "It installs wrk with apt-get when missing, and needs the PostgreSQL server binaries "
        "(as `make test` does); it takes about ten minutes and removes everything it "
        "started. Knobs, all environment variables:",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
        "| `BENCH_DURATION` | 10 | seconds of each measured wrk run |",
        "| `BENCH_WARMUP` | 3 | seconds of the warm-up run before each |",
        "| `BENCH_CONNECTIONS` | 32 | wrk connections |",
        "| `BENCH_THREADS` | 1 | wrk threads |",
        "| `BENCH_DELETE_POOL` | 40000 | chats loaded for the DELETE benchmark (grown if short) |",
        "| `BENCH_SOAK_REQUESTS` | 100000 | requests between the two RSS readings |",
        "| `BENCH_DELETE_WINDOW` | 6 | seconds of the GET run without the big delete |",
        "| `BENCH_QUIET_WAIT` | 180 | seconds the run may spend, in all, waiting for other "
        "load to stop |",
        "| `BENCH_RETRIES` | 2 | times a run disturbed by other load is measured again |",
        "| `BENCH_PIN` | 1 | 0: no CPU pinning |",
        "| `BENCH_PROFILE` | 1 | 0: no py-spy profiles of missed targets |",
        "",
    ]
    return "\n".join(lines)
