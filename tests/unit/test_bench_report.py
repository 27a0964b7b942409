"""The benchmark report, rendered from a small made-up run (no load is generated)."""

import dataclasses
import math
from pathlib import Path

import pytest

from bench import report
from bench.config import BenchConfig, BenchError, knobs
from bench.dataset import BIG_CHAT_MESSAGES, SMALL_CHAT_MESSAGES, Dataset
from bench.procstat import CpuUsage
from bench.results import (
    WORKERS_1,
    WORKERS_2,
    WORKERS_PINNED,
    Delivery,
    IdleStreams,
    Measurement,
    Profile,
    ProfileSummary,
    Results,
    Soak,
    Streams,
    load,
    save,
)
from bench.run import merged
from bench.targets import evaluate
from bench.wrk import WrkResult

CPU = CpuUsage(server_pct=100.0, postgres_pct=30.0, wrk_pct=6.0, other_pct=0.0, steal_pct=0.0)
# With the stream client beside the load generator, and nearly idle.
STREAMS_CPU = dataclasses.replace(CPU, clients_pct=40.0)
IDLE_WITHOUT = CpuUsage(0.1, 0.4, 0.0, 0.0, 0.0)
IDLE_WITH = CpuUsage(1.5, 0.2, 0.0, 0.0, 0.0, clients_pct=0.8)
# Two worker processes beside PostgreSQL and wrk on two cores: the machine is full.
TWO_WORKERS_CPU = CpuUsage(150.0, 40.0, 5.0, 1.0, 0.0)


def wrk_result(rps: float, p50_ms: float, p99_ms: float) -> WrkResult:
    return WrkResult(
        script="get.lua",
        args=["1", "1000", "20"],
        command=["wrk", "-t1", "-c32", "-d10s", "-s", "get.lua", "http://127.0.0.1:1", "--", "1"],
        requests=int(rps * 10),
        duration_s=10.0,
        rps=rps,
        p50_ms=p50_ms,
        p90_ms=p99_ms,
        p99_ms=p99_ms,
        p999_ms=p99_ms,
        max_ms=p99_ms,
        mean_ms=p50_ms,
        errors={"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0},
    )


def measured(name: str, label: str, rps: float, p50_ms: float) -> Measurement:
    return Measurement(name, label, wrk_result(rps, p50_ms, 4 * p50_ms), rps, 3000, CPU, 0.0, 1)


@pytest.fixture
def results() -> Results:
    config = BenchConfig()
    sizes = {
        kind: {
            str(size): measured(f"{kind}_{size}", f"{kind} on {size}", rps, p50)
            for size, p50 in ((SMALL_CHAT_MESSAGES, 10.0), (BIG_CHAT_MESSAGES, 11.0))
        }
        for kind, rps in (("get", 2000.0), ("post", 900.0))
    }
    return Results(
        started_at="2026-01-01 12:00 UTC",
        config={**dataclasses.asdict(config), "runs_repeated": [], "quiet_waited_s": 0},
        pinning={"server": "0", "client": "1", "postgres": "1"},
        machine={
            "cpu_model": "Test CPU",
            "cpu_mhz": "2000",
            "cores": 2,
            "memory_gib": 4.0,
            "kernel": "6.0",
            "os": "Linux",
            "python": "3.11",
            "packages": {"fastapi": "1.0"},
            "wrk": "wrk 4.1.0",
            "event_loop": "uvloop",
            "http": "httptools",
        },
        code={"commit": "abc123", "subject": "A change", "uncommitted": []},
        postgres={"fsync": "on"},
        dataset=Dataset(41002, 2120010, 1003, 41002, 5.0, 1.0, 0.5, 6.5),
        floor_body_bytes=3207,
        endpoints={
            "floor": measured("floor", "floor (precomputed body)", 7000.0, 4.0),
            "get20": measured("get20", "GET /chats/{id}?limit=20", 4200.0, 8.0),
            "post_message": measured("post_message", "POST /chats/{id}/messages/", 1400.0, 19.0),
        },
        chat_size=sizes,
        chat_size_after_posts={str(SMALL_CHAT_MESSAGES): 9010},
        soak=Soak(100_000, 100_000, 101_000, 1.0, 1700.0, [(0, 100_000)], [], CPU),
        total_s=300.0,
    )


def test_the_targets_table_gives_each_measurement_and_verdict(results: Results) -> None:
    page = report.markdown(results, evaluate(results))

    assert "| GET limit=20 ≥ 0.5x floor | 0.60x | **PASS** |" in page
    assert "| POST messages ≥ 0.33x floor | 0.20x | **MISS** |" in page
    assert "| GET p50, 1M-message chat ≤ 1.2x 10-message chat | 1.10x | **PASS** |" in page
    assert "| worker RSS within ±10% after 100,000 requests | +1.0% | **PASS** |" in page
    assert "| not measured | **n/a** |" in page  # no paging runs: the history target


def test_the_result_tables_carry_the_run_numbers(results: Results) -> None:
    page = report.markdown(results, evaluate(results))

    row = "| GET /chats/{id}?limit=20 | 4,200 | 0.60 | 8.00 ms | 32.00 ms | 100% | 30% | 6% | 0% |"
    assert row in page
    assert "| 10 | 10.00 ms | 40.00 ms | 2,000 | 10.00 ms | 40.00 ms | 900 |" in page
    assert "| 1,000 | n/a | n/a | n/a | n/a | n/a | n/a |" in page
    assert "the 10-message chat to 9,010 messages" in page
    assert "The floor: **7,000 requests/s** (p50 4.00 ms, p99 16.00 ms)" in page


def test_sections_without_data_are_left_out(results: Results) -> None:
    page = report.markdown(results, evaluate(results))

    assert "### Paging" not in page
    assert "### Profiles" not in page
    assert "\n\n\n" not in page
    assert "$" not in page.replace("$PORT", "")


def test_the_knob_table_is_bench_config_with_its_defaults(results: Results) -> None:
    page = report.markdown(results, evaluate(results))

    assert f"| `BENCH_DURATION` | {BenchConfig().duration} | " in page
    assert "| `BENCH_PIN` | 1 | " in page
    assert page.count("| `BENCH_") == len(dataclasses.fields(BenchConfig)) == len(knobs())


def test_the_page_is_rendered_again_from_the_saved_results(
    results: Results, tmp_path: Path
) -> None:
    saved = tmp_path / "benchmarks.json"
    save(results, saved, targets=[report.verdict(t) for t in evaluate(results)])

    assert load(saved) == results
    assert report.main([str(saved)]) == 0
    written = (tmp_path / "benchmarks.md").read_text()
    assert written == report.markdown(results, evaluate(results))


def streams_run(received: int = 20_000, p99_ms: float = 31.0, alone: bool = False) -> Streams:
    """1,000 streams over 100 chats: 20,000 deliveries, 50 MiB more RSS, POST 0.93x."""
    return Streams(
        started_at="2026-01-01 12:10 UTC",
        code={"commit": "abc123", "subject": "A change", "uncommitted": []},
        alone=alone,
        streams=1000,
        chats=100,
        open_s=1.5,
        idle=IdleStreams(
            seconds=30,
            rss_without_kib=100 * 1024,
            rss_with_kib=150 * 1024,
            without=IDLE_WITHOUT,
            with_streams=IDLE_WITH,
            pings=2000,
        ),
        delivery=Delivery(
            posts=2000,
            rate=100.0,
            expected=20_000,
            received=received,
            early=12,
            p50_ms=4.0,
            p90_ms=9.0,
            p99_ms=p99_ms,
            p999_ms=45.0,
            max_ms=60.0,
            late_p99_ms=0.5,
            cpu=STREAMS_CPU,
        ),
        post_without=measured("post_no_streams", "POST, no stream open", 1400.0, 19.0),
        post_with=dataclasses.replace(
            measured("post_streams", "POST, 1,000 streams open", 1300.0, 25.0), cpu=STREAMS_CPU
        ),
        posted_with=18_000,
        expected_with=180_000,
        delivered_with=180_000,
        catch_up_s=0.25,
        dropped=0,
        workers={
            WORKERS_PINNED: measured("get_workers_1_pinned", "WORKERS=1, server on CPU 0", 2200, 8),
            WORKERS_1: measured("get_workers_1", "WORKERS=1, server on any CPU", 2100, 8.5),
            WORKERS_2: measured("get_workers_2", "WORKERS=2, server on any CPU", 2900, 6.0),
        },
        workers_post={
            WORKERS_1: measured("post_workers_1", "WORKERS=1, server on any CPU", 1000, 20.0),
            WORKERS_2: dataclasses.replace(
                measured("post_workers_2", "WORKERS=2, server on any CPU", 1700, 15.0),
                cpu=TWO_WORKERS_CPU,
            ),
        },
    )


def profile_named(name: str) -> Profile:
    return Profile(name, name, f"profile-{name}.svg", 100.0, ProfileSummary(10, [], [], []))


def test_the_stream_targets_give_the_delivery_latency_and_the_post_ratio(
    results: Results,
) -> None:
    results.streams = streams_run()
    page = report.markdown(results, evaluate(results))

    row = "| event delivery p99, 1,000 streams, ≤ 50 ms after the 201 | 31.0 ms (p50 4.0 ms) |"
    assert f"{row} **PASS** |" in page
    assert "| POST messages with 1,000 streams open ≥ 0.85x none open | 0.93x | **PASS** |" in page


def test_a_delivery_that_never_arrived_misses_the_latency_target(results: Results) -> None:
    results.streams = streams_run(received=19_990)
    page = report.markdown(results, evaluate(results))

    measured_cell = "31.0 ms (p50 4.0 ms), 10 never arrived"
    assert f"≤ 50 ms after the 201 | {measured_cell} | **MISS** |" in page
    assert "| 19,990 of 20,000 | 4.00 ms |" in page


def test_a_slow_delivery_misses_the_latency_target(results: Results) -> None:
    results.streams = streams_run(p99_ms=50.5)
    targets = {target.key: target for target in evaluate(results)}

    assert targets["delivery_p99"].passed is False
    assert targets["delivery_p99"].measured == "50.5 ms (p50 4.0 ms)"


def test_the_stream_section_carries_the_run_numbers(results: Results) -> None:
    results.streams = streams_run()
    page = report.markdown(results, evaluate(results))

    assert "### Live delivery: event streams" in page
    assert "in the same run as the sections above" in page
    assert "1,000 streams (`GET /chats/{id}/events`, no resume point) over chats 1..100" in page
    assert "10 per chat" in page
    delivery = "| 20,000 of 20,000 | 4.00 ms | 9.00 ms | 31.00 ms | 45.00 ms | 60.00 ms | 12 |"
    assert f"{delivery} 100% | 30% | 6.0% | 40% | 0.0% |" in page
    assert "**51.2 KiB per open stream**" in page
    assert "| no stream open | 100.0 MiB | 0.1% | 0.4% | 0.0% |" in page
    assert "| 1,000 streams open | 150.0 MiB | 1.5% | 0.2% | 0.8% |" in page
    post = "| 1,000 streams open | 1,300 | 0.93 | 25.00 ms | 100.00 ms |"
    assert f"{post} 100% | 30% | 6.0% | 40% | 0.0% |" in page
    assert "| no stream open | 1,400 | 1.00 | 19.00 ms | 76.00 ms |" in page
    assert "for 180,000 events on the streams: all of them arrived, the last 0.25 s" in page
    assert "| WORKERS=2, server on any CPU | 2,900 | 1.38 | 6.00 ms | 24.00 ms |" in page
    assert "| WORKERS=1, server on CPU 0 | 2,200 | 1.05 |" in page
    assert "WORKERS=2 against WORKERS=1, both free to use every CPU: GET **1.38x**, POST" in page
    assert "The stream client used at most 40% of a core" in page


def test_without_stream_results_their_section_is_left_out_and_not_measured(
    results: Results,
) -> None:
    page = report.markdown(results, evaluate(results))

    assert "### Live delivery" not in page
    assert "| event delivery p99, 1,000 streams, ≤ 50 ms after the 201 | not measured |" in page
    assert "| POST messages with 1,000 streams open ≥ 0.85x none open | not measured |" in page


def test_stream_results_are_saved_and_read_back_a_missing_delivery_too(
    results: Results, tmp_path: Path
) -> None:
    run = streams_run(received=19_000)
    never = dataclasses.replace(run.delivery, p99_ms=math.inf, p999_ms=math.inf, max_ms=math.inf)
    results.streams = dataclasses.replace(run, delivery=never)
    saved = tmp_path / "benchmarks.json"
    save(results, saved, targets=[report.verdict(t) for t in evaluate(results)])

    assert load(saved) == results
    assert report.main([str(saved)]) == 0
    assert (
        "| 19,000 of 20,000 | 4.00 ms | 9.00 ms | never | never | never |"
        in (tmp_path / "benchmarks.md").read_text()
    )


def test_a_streams_only_run_replaces_the_stream_results_and_keeps_the_rest(
    results: Results,
) -> None:
    results.streams = streams_run()
    results.profiles = [profile_named("get20"), profile_named("post-streams")]
    again = streams_run(p99_ms=12.0, alone=True)

    merged_results = merged(results, again, [profile_named("delivery")])

    assert merged_results.streams == again
    assert [p.name for p in merged_results.profiles] == ["get20", "delivery"]
    assert merged_results.endpoints == results.endpoints
    assert merged_results.soak == results.soak
    assert merged_results.deletes == results.deletes
    page = report.markdown(merged_results, evaluate(merged_results))
    assert "by a `BENCH_ONLY=streams` run; the other sections are from the run above" in page
    assert "| GET limit=20 ≥ 0.5x floor | 0.60x | **PASS** |" in page


def test_bench_only_takes_its_choices_and_refuses_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert BenchConfig.from_env().only == "all"
    monkeypatch.setenv("BENCH_ONLY", "streams")
    assert BenchConfig.from_env().only == "streams"
    monkeypatch.setenv("BENCH_ONLY", "stream")
    with pytest.raises(BenchError, match="BENCH_ONLY must be one of all, streams"):
        BenchConfig.from_env()
