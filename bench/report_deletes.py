"""The report's section on the delete scenarios (bench/deletes.py), and what PostgreSQL's log
says of the whole run (bench/pglog.py)."""

from bench import deletes, markdown, pglog
from bench.dataset import CHAT_COUNT
from bench.markdown import ms, pct, table
from bench.pglog import HOUSEKEEPING_MS
from bench.postgres import SLOW_MS
from bench.results import (
    DeleteLatency,
    Deletes,
    Latency,
    LogEvent,
    LogWindow,
    MixedDelete,
    Purge,
    Results,
    Waits,
)
from bench.targets import (
    DELETE_P50_MS,
    DELETE_SPREAD,
    MIXED_DELETE_S,
    PURGE_P99,
    purge_met,
    ratio_text,
    server_errors,
    statuses,
)
from bench.wrk import WrkResult

LOG_KINDS = (
    ("checkpoint", "checkpoints"),
    ("lock wait", "lock waits"),
    ("slow statement", f"statements ≥ {SLOW_MS} ms"),
    ("autovacuum", f"autovacuums ≥ {HOUSEKEEPING_MS / 1000:g} s"),
    ("autoanalyze", f"autoanalyzes ≥ {HOUSEKEEPING_MS / 1000:g} s"),
    ("error", "errors"),
)
WAITS_SHOWN = 6
EVENTS_SHOWN = 12  # per stretch


def _when(found: Deletes) -> str:
    if found.alone:
        same = "by a `BENCH_ONLY=delete` run; the other sections are from the run above"
    else:
        same = "in the same run as the sections above, after them"
    commit = found.code["commit"]
    changed = " plus uncommitted changes" if found.code["uncommitted"] else ""
    loads = ", ".join(f"{s:.1f} s" for s in found.refill_s)
    refilled = f" Big chats loaded for the scenarios: {loads}." if loads else ""
    return (
        f"Measured on {found.started_at} (commit `{commit}`{changed}), {same}; the scenarios "
        f"took {found.total_s:.0f} s in all.{refilled}"
    )


def _latency_row(what: str, messages: int, one: Latency) -> list[str]:
    return [
        what,
        f"{messages:,}",
        f"{one.samples}",
        *(ms(v) for v in (one.p50_ms, one.p90_ms, one.p99_ms, one.max_ms)),
    ]


def _request(found: DeleteLatency) -> str:
    rows = [
        _latency_row(f"chat {found.big_chat}", found.big_messages, found.big),
        _latency_row("chats of the pool", found.small_messages, found.small),
    ]
    spread = found.big.p50_ms / found.small.p50_ms
    answered = ", ".join(f"{count} {what}" for what, count in sorted(found.statuses.items()))
    return "\n\n".join(
        [
            "**The request.** `DELETE /chats/{id}` on a service of its own with `JOBS=worker` "
            "and no worker running, so that no purge starts: the "
            f"{found.big_messages:,}-message chat {found.big_chat}, its tombstone undone by "
            "SQL after each (`deleted_at` cleared, its read-model rows put back as they were, "
            "its purge job removed: the same request path every time), in turn with "
            f"{found.small_messages}-message chats of the pool, each deleted once; after "
            f"{deletes.WARM_ROUNDS} untimed rounds, one request at a time from this harness, "
            "each on a new connection, timed from its first byte sent to the response's last "
            "byte read.",
            table(
                ["DELETE of", "messages", "requests", "p50", "p90", "p99", "max"], "lrrrrrr", rows
            ),
            f"p50 of the big chat's DELETE against the small ones': "
            f"**{ratio_text(spread, DELETE_SPREAD)}** (target within {DELETE_SPREAD:g}x, and "
            f"≤ {DELETE_P50_MS:g} ms). Statuses: {answered}.",
        ]
    )


def _waits(waits: Waits) -> str:
    """The waits seen most, as shares of the active backends seen."""
    if not waits.active:
        return f"no active backend seen in {waits.samples} looks"
    shown = list(waits.waits.items())[:WAITS_SHOWN]
    return ", ".join(f"`{wait}` {100 * count / waits.active:.0f}%" for wait, count in shown) + (
        f" (of {waits.active:,} active backends seen in {waits.samples:,} looks)"
    )


def _purge_row(purge: Purge) -> list[str]:
    normal = (purge.before.p99_ms + purge.after.p99_ms) / 2
    done = f"{purge.purge_s:.1f} s" if purge.finished else f"not after {purge.purge_s:.0f} s"
    return [
        deletes.tuning_label(purge.batch_size, purge.batch_pause),
        f"{purge.messages:,}",
        f"{purge.delete_status}, {1000 * purge.delete_s:.1f} ms",
        done,
        f"{purge.rows_per_s:,.0f}" if purge.finished else "n/a",
        ms(purge.before.p99_ms),
        ms(purge.during.p99_ms),
        ms(purge.after.p99_ms),
        f"{purge.during.p99_ms / normal:.2f}",
        f"{purge.during.rps:,.0f}",
        pct(purge.cpu.server_pct),
        pct(purge.cpu.postgres_pct),
        pct(purge.cpu.other_pct),
    ]


def _purges(found: Deletes) -> str:
    purge = found.purge
    window = purge.before.duration_s
    headings = ["settings", "messages", "DELETE", "purged in", "rows/s", "GET p99 before"]
    headings += ["during", "after", "during / normal", "GET req/s during", "CPU: server"]
    headings += ["PostgreSQL", "other"]
    blocks = [
        "**The purge.** A service of its own at its defaults: `JOBS=" + purge.runner + "`, "
        "so the server's own thread purges a deleted chat's messages (with `JOBS=worker`, "
        "`chatapi worker` processes would), in steps of `JOB_BATCH_SIZE` seqs, each its own "
        "transaction, `JOB_BATCH_PAUSE` seconds apart. GETs of other chats (`get.lua`, "
        f"limit=20, chats 1..{CHAT_COUNT:,}) for {window:.0f} s; then the same GETs again, "
        f"the big chat's `DELETE` sent {deletes.LEAD_S:g} s into them and the run stopped "
        f"{deletes.TAIL_S:g} s after its purge job was gone (looked at every "
        f"{deletes.POLL_S:g} s); then {window:.0f} s more. The p99 while the purge ran is "
        "compared with the mean of the runs before and after it; the purge's time runs from "
        "the DELETE's answer until its job was gone.",
        table(headings, "lrrrrrrrrrrrr", [_purge_row(p) for p in [purge, *found.tunings]]),
        f"Other chats' GET p99 during the purge at the defaults: "
        f"**{ratio_text(purge.p99_ratio, PURGE_P99)}** normal (target ≤ {PURGE_P99:g}x). "
        f"What PostgreSQL's client backends were doing meanwhile (`pg_stat_activity` every "
        f"{deletes.WAIT_SAMPLE_S:g} s; `running`: on a CPU or queued for one): "
        f"{_waits(purge.waits)}.",
    ]
    if found.tunings:
        why = "" if purge_met(purge) else ", since the defaults missed the target"
        blocks.append(
            f"The purge was measured again at other settings{why}, each on a new chat of "
            f"{found.tunings[0].messages:,} messages (the rows after the first). Waits at each: "
            + "; ".join(
                f"{deletes.tuning_label(t.batch_size, t.batch_pause)}: {_waits(t.waits)}"
                for t in found.tunings
            )
            + "."
        )
    return "\n\n".join(blocks)


def _timeout(result: WrkResult) -> str:
    found = [word for word in result.command if word.startswith("--timeout=")]
    return found[0].removeprefix("--timeout=") if found else "?"


def _mixed(found: MixedDelete) -> str:
    r = found.result
    counted = statuses(r)
    rows = [[str(status), f"{count:,}"] for status, count in counted.items()]
    errors = ", ".join(f"{count} {kind}" for kind, count in r.errors.items() if count) or "none"
    if found.purged_after_s is not None:
        purged = f"finished {found.purged_after_s:.1f} s after the DELETE's answer, within the run"
    elif found.purge_s is not None:
        purged = f"not finished within the run; finished {found.purge_s:.1f} s after the answer"
    else:
        purged = "**not finished**"
    busy = ", ".join(f"{count} `{detail}`" for detail, count in found.busy.items()) or "none"
    cpu = found.cpu
    return "\n\n".join(
        [
            "**A mixed load with a big chat deleted.** A service of its own at its defaults; "
            f"wrk `-c{found.connections}` with `mixed_statuses.lua` (70% GET limit=20, 10% GET "
            f"limit=100, 20% POST message, over chats 1..{CHAT_COUNT:,}; every response "
            f"counted by status) for {found.seconds} s, after a warm-up run; "
            f"{found.delete_after_s:.1f} s in, `DELETE /chats/{found.chat_id}` "
            f"({found.messages:,} messages) from this harness.",
            table(["status", "responses"], "rr", rows),
            f"{r.requests:,} requests, {r.rps:,.0f} a second, p50 {ms(r.p50_ms)}, p99 "
            f"{ms(r.p99_ms)}, max {ms(r.max_ms)}: **{server_errors(r)} 5xx**; wrk's errors "
            f"(its timeout {_timeout(r)}): {errors}. The DELETE answered "
            f"**{found.delete_status} in {1000 * found.delete_s:.1f} ms** (target: within "
            f"{1000 * MIXED_DELETE_S:g} ms). The purge: {purged}. The service logged these "
            f"503s: {busy}. CPU over the run: server {pct(cpu.server_pct)}, PostgreSQL "
            f"{pct(cpu.postgres_pct)}, wrk {pct(cpu.wrk_pct)}, other {pct(cpu.other_pct)}. "
            f"PostgreSQL's client backends: {_waits(found.waits)}.",
        ]
    )


def _event(event: LogEvent) -> str:
    lasted = f" ({event.ms / 1000:.2f} s)" if event.ms else ""
    return f"- `{event.at[11:]}` **{event.kind}**{lasted}: {event.text}"


def log_table(windows: list[LogWindow]) -> str:
    headings = ["stretch", "from (UTC)", "to", *(name for _, name in LOG_KINDS), "longest"]
    rows = [
        [
            w.name,
            w.started_at[11:],
            w.ended_at[11:],
            *(str(w.counts.get(kind, 0)) for kind, _ in LOG_KINDS),
            ms(w.longest_ms) if w.longest_ms else "",
        ]
        for w in windows
    ]
    return table(headings, "lll" + "r" * (len(LOG_KINDS) + 1), rows)


def log_events(windows: list[LogWindow], summary: str, longest: bool = False) -> str:
    """Each window's first EVENTS_SHOWN events, or its longest, in the log's order."""
    lines = []
    for w in windows:
        shown = pglog.longest(w.events, EVENTS_SHOWN) if longest else w.events[:EVENTS_SHOWN]
        if shown:
            more = sum(w.counts.values()) - len(shown)
            lines.append(f"{w.name}:" + (f" ({more} more)" if more > 0 else ""))
            lines += map(_event, shown)
    if not lines:
        return ""
    return f"<details>\n<summary>{summary}</summary>\n\n" + "\n".join(lines) + "\n\n</details>"


def _log(found: Deletes) -> str:
    settings = ", ".join(f"`{k}={v}`" for k, v in found.log_settings.items())
    return "\n\n".join(
        [
            f"**PostgreSQL's log** ({settings}), per stretch of these scenarios: the events "
            "that overlapped it (a checkpoint, a statement or a lock wait is logged when it "
            "ends, and counted in every stretch it overlapped); `longest`: the longest slow "
            "statement or lock wait among them.",
            log_table(found.log),
            log_events(found.log, "The events, as logged (the first ones of each stretch)"),
            "All of them are in `docs/benchmarks.json`; the whole log of the last run, in "
            f"`{pglog.KEPT_AS}` in the temporary directory.",
        ]
    )


def section(results: Results) -> str:
    found = results.deletes
    if found is None:
        return ""
    return markdown.section(
        "Deleting a chat: the request, and the purge after it",
        _when(found),
        _request(found.latency),
        _purges(found),
        _mixed(found.mixed),
        _log(found),
    )


def whole_run(results: Results) -> str:
    """What PostgreSQL's log says of the whole run: its events counted, the longest shown."""
    found = results.postgres_log
    if found is None:
        return ""
    return markdown.section(
        "What PostgreSQL's log says of the run",
        "Every checkpoint, lock wait, slow statement, autovacuum and error the cluster logged "
        "from the dataset loaded to the end of the run, counted; the longest of them listed.",
        log_table([found]),
        log_events([found], "The longest, as logged", longest=True),
    )
