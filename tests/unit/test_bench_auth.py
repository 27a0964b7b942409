"""The identity and access benchmark's arithmetic, plans and report section (no load is
generated)."""

import dataclasses
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench import report, wrk
from bench.auth import (
    AUDIENCE,
    CROWD_MEMBERS,
    FEW_CHATS,
    MANY_CHATS,
    PROFILE_LIST,
    PROFILES_GET,
    TOTAL_CHATS,
    execution_ms,
    index_read,
    layout,
    scan_of,
    user_token,
)
from bench.config import BenchConfig
from bench.procstat import CpuUsage
from bench.results import (
    Auth,
    IndexRead,
    Latency,
    Measurement,
    Profile,
    ProfileSummary,
    ProjectionCost,
    Results,
    Turns,
    load,
    save,
)
from bench.run import merged_auth
from bench.targets import evaluate, median_ratio, p50, ratio_text, rps, spread, turn_ratios
from infrastructure.user_tokens import UserTokens
from tests.unit.test_bench_report import CPU, measured
from tests.unit.test_bench_report import results as results  # the made-up run, as a fixture

SECRET = "a-secret-of-the-benchmark-run-that-is-long-enough"
IDLE_CPU = dataclasses.replace(CPU, clients_pct=2.5)


def test_the_added_chats_make_the_total_and_spread_the_users_within_them() -> None:
    where = layout(chats=41_002, highest_id=41_002)

    assert (where.first, where.last) == (41_003, TOTAL_CHATS)
    assert (where.pair, where.crowd, where.spread_first) == (41_003, 41_004, 41_005)
    for count in (FEW_CHATS, MANY_CHATS):
        chats = where.chats_of(count)
        assert len(chats) == count
        assert chats[0] == where.spread_first
        assert chats[-1] <= where.last
    # Spread over the whole range, not bunched at its start.
    assert where.chats_of(FEW_CHATS)[-1] > where.last - 2 * where.step(FEW_CHATS)


def test_a_database_already_past_the_total_still_gets_the_many_users_chats() -> None:
    where = layout(chats=120_000, highest_id=150_000)

    assert where.first == 150_001
    assert len(where.chats_of(MANY_CHATS)) == MANY_CHATS
    assert where.chats_of(MANY_CHATS)[-1] <= where.last


def test_the_tokens_are_the_ones_the_service_accepts() -> None:
    now = datetime.now(UTC)
    token = user_token(SECRET, "bench-reader", now)

    principal = UserTokens(SECRET.encode(), AUDIENCE).verify(token)

    assert (principal.kind, principal.user_id) == ("user", "bench-reader")
    assert principal.expires_at is not None
    assert principal.expires_at > now


def node(kind: str, relation: str | None = None, rows: int = 0, **more: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"Node Type": kind, "Actual Rows": rows, "Actual Loops": 1, **more}
    if relation:
        found["Relation Name"] = relation
    return found


def explained(plan: dict[str, Any], ms: float = 0.25) -> list[dict[str, Any]]:
    return [{"Plan": plan, "Planning Time": 0.1, "Execution Time": ms}]


def test_the_user_query_plan_gives_its_member_index_scan_and_the_rows_it_read() -> None:
    member = node(
        "Index Scan",
        "chat_member_views",
        21,
        **{"Index Name": "ix_chat_member_views_user_id_last_activity_at_chat_id"},
        **{"Scan Direction": "Backward"},
    )
    views = node("Index Scan", "chat_views", 1, **{"Actual Loops": 21, "Index Name": "pk"})
    plan = node("Limit", rows=21, Plans=[node("Nested Loop", rows=21, Plans=[member, views])])

    read = index_read(explained(plan), "chat_member_views", "the text")

    assert read == IndexRead(
        "Index Scan Backward",
        "ix_chat_member_views_user_id_last_activity_at_chat_id",
        "chat_member_views",
        21,
        0.25,
        "the text",
    )
    assert scan_of(plan, "chat_views") is views
    assert index_read(explained(plan), "chat_views", "").rows == 21  # 1 row x 21 loops


def test_an_update_counts_the_rows_its_scan_found_not_the_modify_node() -> None:
    bitmap = node(
        "Bitmap Heap Scan",
        "chat_member_views",
        1000,
        Plans=[node("Bitmap Index Scan", rows=1000, **{"Index Name": "pk_chat_member_views"})],
    )
    update = node("ModifyTable", "chat_member_views", 0, Operation="Update", Plans=[bitmap])

    read = index_read(explained(update, 4.5), "chat_member_views", "")

    assert (read.node, read.index, read.rows, read.execution_ms) == (
        "Bitmap Heap Scan",
        "pk_chat_member_views",
        1000,
        4.5,
    )


def test_the_execution_time_is_read_from_a_text_plan() -> None:
    plan = "Limit  (actual time=0.016..0.056 rows=21 loops=1)\nPlanning Time: 0.123 ms\n"

    assert execution_ms(plan + "Execution Time: 0.076 ms") == pytest.approx(0.076)
    assert execution_ms(plan) is None


def test_a_plan_without_a_scan_of_the_table_says_so() -> None:
    read = index_read(explained(node("Result")), "chat_member_views", "")

    assert (read.node, read.index, read.rows) == ("no scan", "", 0)


def turns(base: list[tuple[float, float]], other: list[tuple[float, float]], name: str) -> Turns:
    """Runs of (requests/s, p50 ms), round by round."""
    return Turns(
        [
            dataclasses.replace(measured(f"{name}_a", f"{name} A", r, p), cpu=IDLE_CPU)
            for r, p in base
        ],
        [measured(f"{name}_b", f"{name} B", r, p) for r, p in other],
    )


def test_ratios_are_taken_round_by_round_and_their_median_kept() -> None:
    found = turns(
        [(1000.0, 30.0), (900.0, 33.0), (1100.0, 28.0)],
        [(950.0, 31.0), (720.0, 40.0), (1100.0, 28.0)],
        "x",
    )

    assert turn_ratios(found, rps) == pytest.approx([0.95, 0.8, 1.0])
    assert median_ratio(found, rps) == pytest.approx(0.95)
    assert median_ratio(found, p50) == pytest.approx(31.0 / 30.0)
    assert math.isnan(median_ratio(Turns([], []), rps))


def test_with_a_closing_base_run_each_other_run_is_taken_against_the_runs_around_it() -> None:
    # The machine slows down by 100 requests/s a run; B is always 10% below A.
    base = [(1000.0, 10.0), (800.0, 12.0), (600.0, 14.0)]
    found = turns(base, [(810.0, 11.0), (630.0, 13.0)], "drift")

    assert turn_ratios(found, rps) == pytest.approx([0.9, 0.9])
    assert median_ratio(found, p50) == pytest.approx(1.0)


def test_the_table_shows_the_closing_run_and_each_ratio_against_the_runs_around_it(
    results: Results,
) -> None:
    found = auth_run()
    found.get20 = turns(
        [(1000.0, 30.0), (800.0, 30.0), (600.0, 30.0)], [(810.0, 32.0), (630.0, 32.0)], "get"
    )
    results.auth = found
    page = report.markdown(results, evaluate(results))

    assert "| get A | 1 | 1,000 | base |" in page
    assert "| get B | 2 | 630 | 0.90 |" in page
    assert "| get A | closing | 600 | base |" in page
    assert "`GET /chats/{id}?limit=20` **0.90x** (rounds 0.90, 0.90)" in page
    assert "A, B, A, B, ..., A: 2 runs of B" in page


def test_a_ratio_next_to_its_bound_gets_a_third_decimal() -> None:
    assert ratio_text(0.95, 0.9) == "0.95x"
    assert ratio_text(0.8951, 0.9) == "0.895x"
    assert ratio_text(0.8949, 0.9) == "0.89x"
    assert ratio_text(0.9, 0.9) == "0.90x"
    assert ratio_text(1.2034, 1.2) == "1.203x"
    assert ratio_text(0.8321, 1.2) == "0.832x"  # 1 / 1.2, the bound the other way round
    assert ratio_text(1.06, 1.2) == "1.06x"


def test_within_a_factor_reads_either_way_round() -> None:
    assert spread(1.25) == pytest.approx(1.25)
    assert spread(0.8) == pytest.approx(1.25)
    assert spread(1.0) == 1.0


def auth_run(alone: bool = True, token_rps: float = 950.0, many_p50: float = 33.0) -> Auth:
    return Auth(
        started_at="2026-01-01 12:40 UTC",
        code={"commit": "abc123", "subject": "A change", "uncommitted": ["api/auth.py"]},
        alone=alone,
        chats=100_000,
        added_chats=58_998,
        member_rows=129_000,
        users=26_002,
        reader_chats=1_002,
        few_chats=FEW_CHATS,
        many_chats=MANY_CHATS,
        crowd_members=CROWD_MEMBERS,
        load_s=6.5,
        get20=turns([(1000.0, 30.0)] * 3, [(token_rps, 32.0)] * 3, "get"),
        post_message=turns([(600.0, 50.0)] * 3, [(570.0, 53.0)] * 3, "post"),
        chat_list=turns([(950.0, 30.0)] * 3, [(900.0, many_p50)] * 3, "list"),
        chat_list_short=[measured("short", "many, limit=10", 940.0, 30.5)] * 3,
        list_loop_few=[Latency(2000, 1.1, 1.3, 2.0, 5.0)] * 3,
        list_loop_many=[Latency(2000, 1.2, 1.4, 2.2, 6.0)] * 3,
        list_plans={
            "many": IndexRead("Index Scan", "ix_members", "chat_member_views", 21, 0.09, "PLAN M"),
            "few": IndexRead("Index Scan", "ix_members", "chat_member_views", 10, 0.05, "PLAN F"),
        },
        post_members=turns([(700.0, 45.0)] * 3, [(350.0, 90.0)] * 3, "members"),
        projection={
            "2": ProjectionCost(41_003, 2, 2, [0.05, 0.04, 0.06], "PLAN 2"),
            "1000": ProjectionCost(41_004, 1000, 1000, [4.0, 5.0, 4.5], "PLAN 1000"),
        },
        total_s=312.0,
    )


def test_the_targets_are_met_within_their_bounds(results: Results) -> None:
    results.auth = auth_run()
    found = {t.key: t for t in evaluate(results)}

    assert found["auth_get20"].passed is True
    assert found["auth_get20"].measured == "0.95x (median of rounds 0.95, 0.95, 0.95)"
    assert found["auth_post_message"].passed is True
    assert found["auth_chat_list"].passed is True
    assert found["auth_chat_list"].measured == (
        "1.10x (median of rounds 1.10, 1.10, 1.10); 1.02x with limit=10, an answer as long"
    )

    results.auth = auth_run(token_rps=850.0, many_p50=37.0)
    found = {t.key: t for t in evaluate(results)}
    assert (found["auth_get20"].passed, found["auth_chat_list"].passed) == (False, False)


def test_without_auth_results_its_targets_are_not_measured(results: Results) -> None:
    found = {t.key: t for t in evaluate(results)}

    assert {
        found[key].verdict for key in ("auth_get20", "auth_post_message", "auth_chat_list")
    } == {"n/a"}
    assert "### Identity and access" not in report.markdown(results, evaluate(results))


def test_the_section_carries_the_run_numbers(results: Results) -> None:
    results.auth = auth_run()
    page = report.markdown(results, evaluate(results))

    assert "### Identity and access" in page
    assert "by a `BENCH_ONLY=auth` run; the other sections are from the run above" in page
    assert "58,998 chats added to the run's database, for 100,000 in all" in page
    row = "| get B | 1 | 950 | 0.95 | 32.00 ms | 128.00 ms |"
    assert row in page
    assert "`GET /chats/{id}?limit=20` **0.95x** (rounds 0.95, 0.95, 0.95)" in page
    assert "`POST /chats/{id}/messages/` **0.95x**" in page
    assert "(target ≥ 0.9x)" in page
    assert "GET 30.00 ms without, 32.00 ms with" in page
    assert "| 2.5% | 0.0% |" in page  # the idle service's CPU, apart from other load
    assert "the user in 10,000 chats against the user in 10 chats: **1.10x**" in page
    assert "with `limit=10` **1.02x**" in page
    assert "| user in 10,000 chats | 3 | 2,000 | 1.20 ms | 1.40 ms | 2.20 ms | 6.00 ms |" in page
    assert "One at a time, p50 in 10,000 chats against in 10 chats: **1.09x**" in page
    assert "**Index Scan** on `ix_members`, **21 rows**, 0.090 ms" in page
    assert "PLAN M" in page
    assert "**0.50x** (rounds 0.50, 0.50, 0.50); p50 90.00 ms against 45.00 ms" in page
    assert "| chat 41004 | 1,000 | 1,000 | 3 | 4.50 ms | 4.00 ms | 5.00 ms |" in page
    assert "PLAN 1000" in page
    assert "**The choice.**" in page
    assert "updates 1,000 rows (and their index entries), 4.50 ms" in page
    assert "\n\n\n" not in page


def test_runs_disturbed_by_other_load_are_named(results: Results) -> None:
    found = auth_run()
    busy = dataclasses.replace(CPU, other_pct=55.0)
    found.post_members.other[1] = dataclasses.replace(found.post_members.other[1], cpu=busy)
    results.auth = found

    page = report.markdown(results, evaluate(results))

    assert "during 1 of these 27 runs: members B, round 2 (55%). Their numbers" in page
    results.auth = auth_run()
    assert "**Other load** on the machine (10%" not in report.markdown(results, evaluate(results))


def test_auth_results_are_saved_and_read_back(results: Results, tmp_path: Path) -> None:
    results.auth = auth_run(alone=False)
    saved = tmp_path / "benchmarks.json"
    save(results, saved, targets=[report.verdict(t) for t in evaluate(results)])

    assert load(saved) == results
    assert report.main([str(saved)]) == 0
    assert (
        "in the same run as the sections above, after them"
        in (tmp_path / "benchmarks.md").read_text()
    )


def profile_named(name: str) -> Profile:
    return Profile(name, name, f"profile-{name}.svg", 100.0, ProfileSummary(1, [], [], []))


def test_an_auth_only_run_replaces_the_auth_results_and_profiles_and_keeps_the_rest(
    results: Results,
) -> None:
    results.profiles = [
        profile_named("get20"),
        profile_named(PROFILES_GET[0]),
        profile_named(PROFILES_GET[1]),
    ]
    results.auth = auth_run(token_rps=500.0)
    fresh = auth_run()

    merged = merged_auth(results, fresh, [])

    assert merged.auth == fresh
    assert [p.name for p in merged.profiles] == ["get20"]
    assert merged.endpoints == results.endpoints


def test_the_section_points_at_the_profiles_of_its_missed_targets(results: Results) -> None:
    results.auth = auth_run(many_p50=40.0)
    results.profiles = [profile_named("get20"), profile_named(PROFILE_LIST)]

    page = report.markdown(results, evaluate(results))

    link = f"{PROFILE_LIST} ([profile-{PROFILE_LIST}.svg](profile-{PROFILE_LIST}.svg))"
    assert f"under the same load): {link}; their top frames" in page


def test_bench_only_takes_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_ONLY", "auth")

    assert BenchConfig.from_env().only == "auth"


def test_the_authorization_reaches_wrk_in_its_environment_not_its_command() -> None:
    setup = wrk.WrkSetup("wrk", 32, 1, None, authorization="Bearer abc.def.ghi")

    command = wrk.command(setup, "http://127.0.0.1:1", "get.lua", ["1", "1000", "20"], 10)

    assert wrk._env(setup)["BENCH_AUTHORIZATION"] == "Bearer abc.def.ghi"
    assert not any("abc.def.ghi" in word for word in command)
    assert wrk._env(dataclasses.replace(setup, authorization=None))["BENCH_AUTHORIZATION"] == ""


def test_the_measurements_of_both_sides_keep_their_cpu() -> None:
    found = turns([(1.0, 1.0)], [(1.0, 1.0)], "cpu")

    assert isinstance(found.base[0], Measurement)
    assert found.base[0].cpu == IDLE_CPU
    assert found.other[0].cpu == CpuUsage(100.0, 30.0, 6.0, 0.0, 0.0)
