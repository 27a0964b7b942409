"""The benchmark report, rendered from a small made-up run (no load is generated)."""

import dataclasses
from pathlib import Path

import pytest

from bench import report
from bench.config import BenchConfig, knobs
from bench.dataset import BIG_CHAT, BIG_CHAT_MESSAGES, SMALL_CHAT_MESSAGES, Dataset
from bench.procstat import CpuUsage
from bench.results import BigDelete, Measurement, Results, Soak, load, save
from bench.targets import evaluate
from bench.wrk import WrkResult

CPU = CpuUsage(server_pct=100.0, postgres_pct=30.0, wrk_pct=6.0, other_pct=0.0, steal_pct=0.0)


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
        big_delete=BigDelete(
            chat_id=BIG_CHAT,
            messages=BIG_CHAT_MESSAGES,
            status=204,
            wall_s=1.25,
            baseline=wrk_result(2200.0, 12.0, 80.0),
            during=wrk_result(2100.0, 13.0, 200.0),
            p99_ratio=2.5,
            overlap_pct=40.0,
            cpu=CPU,
        ),
        total_s=300.0,
    )


def test_the_targets_table_gives_each_measurement_and_verdict(results: Results) -> None:
    page = report.markdown(results, evaluate(results))

    assert "| GET limit=20 ≥ 0.5x floor | 0.60x | **PASS** |" in page
    assert "| POST messages ≥ 0.33x floor | 0.20x | **MISS** |" in page
    assert "| GET p50, 1M-message chat ≤ 1.2x 10-message chat | 1.10x | **PASS** |" in page
    assert "| DELETE of the 1M chat ≤ 3 s | 1.25 s | **PASS** |" in page
    assert "| other chats' GET p99 during it ≤ 2x normal | 2.50x | **MISS** |" in page
    assert "| worker RSS within ±10% after 100,000 requests | +1.0% | **PASS** |" in page
    assert "| not measured | **n/a** |" in page  # no paging runs: the history target


def test_the_result_tables_carry_the_run_numbers(results: Results) -> None:
    page = report.markdown(results, evaluate(results))

    row = "| GET /chats/{id}?limit=20 | 4,200 | 0.60 | 8.00 ms | 32.00 ms | 100% | 30% | 6% | 0% |"
    assert row in page
    assert "| 10 | 10.00 ms | 40.00 ms | 2,000 | 10.00 ms | 40.00 ms | 900 |" in page
    assert "| 1,000 | n/a | n/a | n/a | n/a | n/a | n/a |" in page
    assert "the 10-message chat to 9,010 messages" in page
    assert "`DELETE /chats/1001` answered **204** after **1.25 s**" in page
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
