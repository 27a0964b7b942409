"""The replica benchmark's arithmetic and its section of the report (no load is generated)."""

import dataclasses
import math
from pathlib import Path

import pytest

from bench import report
from bench.config import BenchConfig
from bench.procstat import CpuUsage
from bench.replicas import Round, fresh_reads, latency
from bench.results import FreshReads, Latency, ReadsOn, Replicas, Results, load, save
from bench.targets import evaluate
from tests.unit.test_bench_report import CPU, measured
from tests.unit.test_bench_report import results as results  # the made-up run, as a fixture

STANDBY_CPU = CpuUsage(100.0, 20.0, 6.0, 0.0, 0.0, standby_pct=25.0)


def test_latencies_are_nearest_rank_percentiles_in_milliseconds() -> None:
    found = latency([0.001 * n for n in range(100, 0, -1)])  # 1..100 ms, in any order

    assert found.samples == 100
    assert (found.p50_ms, found.p90_ms, found.p99_ms) == pytest.approx((50.0, 90.0, 99.0))
    assert found.max_ms == pytest.approx(100.0)


def test_no_samples_give_no_percentiles() -> None:
    found = latency([])

    assert found.samples == 0
    assert math.isnan(found.p50_ms)
    assert math.isnan(found.max_ms)


def test_reads_that_waited_replica_wait_out_and_stale_reads_are_counted() -> None:
    rounds = [
        Round(post_s=0.002, read_s=0.001, plain_s=0.001, shown=True),
        Round(post_s=0.002, read_s=0.499, plain_s=0.001, shown=True),  # replayed just in time
        Round(post_s=0.003, read_s=0.500, plain_s=0.001, shown=True),  # fell back
        Round(post_s=0.002, read_s=0.620, plain_s=0.002, shown=False),
    ]

    found = fresh_reads(rounds, wait_s=0.5, cpu=STANDBY_CPU)

    assert (found.waited_out, found.stale) == (2, 1)
    assert (found.post.samples, found.with_token.samples, found.without_token.samples) == (4, 4, 4)
    assert found.with_token.max_ms == pytest.approx(620.0)
    assert found.without_token.p50_ms == pytest.approx(1.0)
    assert found.post.p99_ms == pytest.approx(3.0)
    assert found.cpu == STANDBY_CPU


def fresh(
    read_p50_ms: float, read_p99_ms: float, waited_out: int = 0, cpu: CpuUsage = CPU
) -> FreshReads:
    return FreshReads(
        post=Latency(1000, 2.0, 2.5, 4.0, 9.0),
        with_token=Latency(1000, read_p50_ms, read_p50_ms, read_p99_ms, 510.0),
        without_token=Latency(1000, 1.2, 1.5, 2.0, 3.0),
        waited_out=waited_out,
        stale=0,
        cpu=cpu,
    )


def replicas_run(alone: bool = False) -> Replicas:
    on_standby = measured("get20_reads_on_standby", "reads on the standby", 1900.0, 9.0)
    return Replicas(
        started_at="2026-01-01 12:20 UTC",
        code={"commit": "abc123", "subject": "A change", "uncommitted": []},
        alone=alone,
        database_mb=812.4,
        base_backup_s=4.25,
        replication="streaming, async",
        replica_wait_s=0.5,
        primary_settings={"synchronous_commit": "on", "synchronous_standby_names": ""},
        standby_settings={"synchronous_commit": "on", "hot_standby": "on"},
        primary=ReadsOn(
            measured("get20_reads_on_primary", "reads on the primary", 2000.0, 8.0),
            fresh(1.3, 2.5),
        ),
        standby=ReadsOn(
            dataclasses.replace(on_standby, cpu=STANDBY_CPU), fresh(1.8, 12.0, 3, STANDBY_CPU)
        ),
        total_s=48.6,
    )


def test_the_replica_section_carries_the_run_numbers(results: Results) -> None:
    results.replicas = replicas_run()
    page = report.markdown(results, evaluate(results))

    assert "### Reads from a streaming replica" in page
    assert "in the same run as the sections above, after them" in page
    assert "(812 MB; streaming 4.2 s after the copy started)" in page
    assert "on CPU 1, beside the primary" in page
    assert "Replication as the primary reports it: streaming, async." in page
    get = "| the standby (`READ_DATABASE_URL`) | 1,900 | 0.95 | 9.00 ms | 36.00 ms |"
    assert f"{get} 100% | 20% | 25% | 6.0% | 0.0% |" in page
    assert "Reads on the standby against reads on the primary: **0.95x**." in page
    read = (
        "| 2.00 ms | 4.00 ms | 1.80 ms | 1.80 ms | 12.00 ms | 510.00 ms | 3 | 1.20 ms | 2.00 ms |"
    )
    assert f"| the standby (`READ_DATABASE_URL`) {read}" in page
    assert "| ≥ 0.5 s |" in page
    assert "1,000 rounds on each service" in page
    assert "p50 **+0.50 ms**, p99 **+9.50 ms**. Every read with its token showed its POST." in page
    assert "| `synchronous_standby_names` | (empty) | n/a |" in page
    assert "| `hot_standby` | n/a | `on` |" in page
    cpu = "server 100% / 100%, PostgreSQL primary 30% / 20%, standby 0.0% / 25%, the client "
    assert f"{cpu}6.0% / 6.0%, other 0.0% / 0.0%." in page
    assert "The scenarios took 49 s in all, the copy included." in page
    assert "\n\n\n" not in page


def test_without_replica_results_their_section_is_left_out(results: Results) -> None:
    page = report.markdown(results, evaluate(results))

    assert "### Reads from a streaming replica" not in page


def test_replica_results_are_saved_and_read_back(results: Results, tmp_path: Path) -> None:
    results.replicas = replicas_run(alone=True)
    saved = tmp_path / "benchmarks.json"
    save(results, saved, targets=[report.verdict(t) for t in evaluate(results)])

    assert load(saved) == results
    assert report.main([str(saved)]) == 0
    page = (tmp_path / "benchmarks.md").read_text()
    assert "by a `BENCH_ONLY=replicas` run; the other sections are from the run above" in page


def test_bench_only_takes_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_ONLY", "replicas")

    assert BenchConfig.from_env().only == "replicas"
