"""The `make run` and WORKERS targets, their sections of the report, and older saved results
without them (no load is generated)."""

import dataclasses
import json
from pathlib import Path

from bench import observations, report
from bench.procstat import CpuUsage
from bench.results import WORKERS_1, WORKERS_2, MakeRun, Results, Turns, load, save
from bench.run import merged
from bench.targets import evaluate
from tests.unit.test_bench_report import measured, streams_run
from tests.unit.test_bench_report import results as results  # the made-up run, as a fixture


def make_run(get_rps: float = 3900.0, post_rps: float = 1200.0) -> MakeRun:
    """Against the made-up run's GET 4,200 and POST 1,400 req/s, on a floor of 7,000."""
    return MakeRun(
        workers=1,
        endpoints={
            "get20": measured(
                "make_run_get20", "GET /chats/{id}?limit=20, as `make run`", get_rps, 8.5
            ),
            "post_message": measured(
                "make_run_post_message", "POST /chats/{id}/messages/, as `make run`", post_rps, 21
            ),
        },
        log_lines=100_000,
        log_bytes=25_000_000,
    )


def targets_of(results: Results) -> dict[str, tuple[str, bool | None]]:
    return {target.key: (target.measured, target.passed) for target in evaluate(results)}


def test_a_share_of_the_floor_within_10_percent_of_the_main_runs_passes(results: Results) -> None:
    results.make_run = make_run(get_rps=3900.0, post_rps=1200.0)

    found = targets_of(results)

    # GET 3,900 / 4,200 = 0.93; POST 1,200 / 1,400 = 0.86.
    assert found["make_run_get20"] == ("0.93x (0.56 of the floor, against 0.60)", True)
    assert found["make_run_post_message"] == ("0.86x (0.17 of the floor, against 0.20)", False)


def test_exactly_90_percent_of_the_main_runs_share_passes(results: Results) -> None:
    results.make_run = make_run(get_rps=0.9 * 4200.0, post_rps=0.9 * 1400.0)

    found = targets_of(results)

    assert found["make_run_get20"][1] is True
    assert found["make_run_post_message"][1] is True


def test_the_make_run_section_puts_each_run_beside_the_main_one(results: Results) -> None:
    results.make_run = make_run()
    page = report.markdown(results, evaluate(results))

    assert "### As `make run` serves it: the request log on" in page
    goal = "GET limit=20 as `make run` serves it (access log on) ≥ 0.9x its share of the floor"
    assert f"| {goal} above | 0.93x (0.56 of the floor, against 0.60) | **PASS** |" in page
    main = "| GET /chats/{id}?limit=20, ACCESS_LOG=false (above) | 4,200 | 0.60 | 1.00 |"
    assert f"{main} 8.00 ms | 32.00 ms | 100% | 30% | 6.0% | 0.0% |" in page
    again = "| POST /chats/{id}/messages/, as `make run` | 1,200 | 0.17 | 0.86 | 21.00 ms |"
    assert f"{again} 84.00 ms | 100% | 30% | 6.0% | 0.0% |" in page
    assert "The service above is stopped meanwhile (SIGSTOP, continued after)" in page
    assert "WORKERS=1; its stdout" in page
    assert "100,000 request lines to its stdout (23.8 MiB, 250 bytes a line)" in page
    ratios = "GET /chats/{id}?limit=20 **0.93x**, POST /chats/{id}/messages/ **0.86x**"
    assert f"against the run above: {ratios} (target ≥ 0.9x)." in page
    assert "\n\n\n" not in page


def test_the_make_run_runs_are_in_the_observations(results: Results) -> None:
    slow = measured("make_run_get20", "GET, as `make run`", 3000.0, 9.0)
    results.make_run = dataclasses.replace(
        make_run(), endpoints={"get20": dataclasses.replace(slow, cpu=CpuUsage(70, 30, 6, 12, 0))}
    )

    notes = " ".join(observations.notes(results))

    assert "not saturated during: GET, as `make run` (70%)" in notes
    assert "**Other load** on the machine (processes outside this benchmark" in notes
    assert "GET, as `make run` (12% other, 0% steal)" in notes


def test_the_workers_targets_give_the_ratio_and_the_two_worker_runs_cpu(
    results: Results,
) -> None:
    results.streams = streams_run()

    found = targets_of(results)

    # GET 2,900 / 2,100 req/s; POST 1,700 / 1,000 req/s.
    get_cpu = "server 100%, PostgreSQL 30%, wrk 6%, other 0%"
    assert found["workers_get"] == (f"1.38x (CPU with WORKERS=2: {get_cpu})", False)
    post_cpu = "server 150%, PostgreSQL 40%, wrk 5%, other 1%"
    assert found["workers_post"] == (f"1.70x (CPU with WORKERS=2: {post_cpu})", True)
    page = report.markdown(results, evaluate(results))
    goal = "POST messages with WORKERS=2 ≥ 1.6x WORKERS=1, same PostgreSQL"
    assert f"| {goal} | 1.70x (CPU with WORKERS=2: {post_cpu}) | **PASS** |" in page


def test_the_workers_section_gives_the_post_runs_and_where_the_cpu_went(
    results: Results,
) -> None:
    results.streams = streams_run()
    page = report.markdown(results, evaluate(results))

    assert "| POST messages | requests/s | against WORKERS=1 on any CPU |" in page
    assert "| other | all, of 200% |" in page
    post = "| WORKERS=2, server on any CPU | 1,700 | 1.70 | 15.00 ms | 60.00 ms |"
    assert f"{post} 150% | 40% | 5.0% | 1.0% | 196% |" in page
    get = "| WORKERS=2, server on any CPU | 2,900 | 1.38 | 6.00 ms | 24.00 ms |"
    assert f"{get} 100% | 30% | 6.0% | 0.0% | 136% |" in page
    summary = "both free to use every CPU: GET **1.38x**, POST **1.70x** (target ≥ 1.6x)."
    assert summary in page
    cpu = "GET: server 100%, PostgreSQL 30%, wrk 6%, other 0%; 136% in all. POST: server 150%"
    assert f"of the machine's 2 cores (200%): {cpu}, PostgreSQL 40%, wrk 5%, other 1%; 196%" in page
    full = "cores were (nearly) full during the WORKERS=2 runs: POST (196% in all, the server 150%)"
    assert full in " ".join(observations.notes(results))


def test_without_results_the_new_targets_are_not_measured(results: Results) -> None:
    found = targets_of(results)

    for key in ("workers_get", "workers_post", "make_run_get20", "make_run_post_message"):
        assert found[key] == ("not measured", None)
    page = report.markdown(results, evaluate(results))
    assert "### As `make run` serves it" not in page


def test_results_saved_before_these_scenarios_load_and_render(
    results: Results, tmp_path: Path
) -> None:
    results.streams = streams_run()
    saved = tmp_path / "benchmarks.json"
    save(results, saved)
    raw = json.loads(saved.read_text())
    del raw["make_run"], raw["streams"]["workers_post"]  # as an older run wrote it
    saved.write_text(json.dumps(raw))

    old = load(saved)

    assert old.make_run is None
    assert old.streams is not None
    assert old.streams.workers_post == {}
    assert targets_of(old)["workers_post"] == ("not measured", None)
    assert targets_of(old)["workers_get"][1] is False
    assert report.main([str(saved)]) == 0
    page = (tmp_path / "benchmarks.md").read_text()
    assert "both free to use every CPU: GET **1.38x** (target ≥ 1.6x)." in page
    assert "| POST messages | requests/s |" not in page


def test_make_run_results_are_saved_read_back_and_kept_by_a_streams_only_run(
    results: Results, tmp_path: Path
) -> None:
    results.make_run = make_run()
    results.streams = streams_run()
    saved = tmp_path / "benchmarks.json"
    save(results, saved, targets=[report.verdict(t) for t in evaluate(results)])

    assert load(saved) == results
    again = dataclasses.replace(
        streams_run(alone=True), workers_post={WORKERS_1: results.streams.workers_post[WORKERS_1]}
    )
    merged_results = merged(load(saved), again, [])
    assert merged_results.make_run == results.make_run
    assert targets_of(merged_results)["make_run_get20"][1] is True
    assert targets_of(merged_results)["workers_post"] == ("not measured", None)
    assert merged_results.streams is not None
    assert WORKERS_2 not in merged_results.streams.workers_post


def in_turns(name: str, label: str, main: list[float], as_run: list[float]) -> Turns:
    """The main service's runs (one more: the closing one) and the `make run` one's."""
    return Turns(
        [measured(name, label, rps, 8.0) for rps in main],
        [measured(f"make_run_{name}", f"{label}, as `make run`", rps, 9.0) for rps in as_run],
    )


def test_measured_in_turns_the_target_is_the_median_of_the_rounds(results: Results) -> None:
    # The single runs say 0.86x for the POST; its rounds against the runs around them:
    # 1,300 / 1,400 = 0.93, 1,250 / 1,300 = 0.96, 1,100 / 1,300 = 0.85: median 0.93.
    results.make_run = dataclasses.replace(
        make_run(),
        turns={
            "get20": in_turns("get20", "GET", [4200, 4000, 4400, 4200], [3900, 3800, 4000]),
            "post_message": in_turns(
                "post_message", "POST", [1500, 1300, 1300, 1300], [1300, 1250, 1100]
            ),
        },
    )

    found = targets_of(results)

    rounds = "median of rounds 0.93, 0.96, 0.85; medians 0.18 of the floor, against 0.19"
    assert found["make_run_post_message"] == (f"0.93x ({rounds})", True)
    assert found["make_run_get20"][0].startswith("0.93x (median of rounds 0.95, 0.90, 0.93;")
    page = report.markdown(results, evaluate(results))
    assert "each measured in turns: the service above (ACCESS_LOG=false), this one" in page
    assert "| POST, as `make run` | 3 | 1,100 | 0.85 | 9.00 ms |" in page
    assert "| POST | closing | 1,300 | base |" in page
    summary = "GET **0.93x** (rounds 0.95, 0.90, 0.93), POST **0.93x** (rounds 0.93, 0.96, 0.85)"
    assert f"against ACCESS_LOG=false: {summary} (target ≥ 0.9x)." in page


def test_turns_are_saved_and_read_back(results: Results, tmp_path: Path) -> None:
    turns = {"get20": in_turns("get20", "GET", [4200, 4000], [3900])}
    results.make_run = dataclasses.replace(make_run(), turns=turns)
    saved = tmp_path / "benchmarks.json"
    save(results, saved)

    assert load(saved) == results
