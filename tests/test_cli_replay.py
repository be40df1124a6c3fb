"""``journal replay``: every verdict, and its exit code, produced for real."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli_support import (
    CALC_CHANGED,
    CALC_DIVERGED,
    CALC_V1,
    Invoke,
    edit_payload,
    record_calc,
    write_module,
)

pytest_plugins = ["tests.cli_fixtures"]


def test_replay_of_a_clean_execution_exits_0_and_prints_verdict_counts_and_timing(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke("replay", demo_ids["refund"], "--db", db, "--flows", "journal.demo")
    assert result.exit_code == 0, result.stderr
    assert f"{demo_ids['refund']}: ok" in result.stdout
    assert "17 events, 6 steps checked in" in result.stdout
    assert "head 17:" in result.stdout
    assert result.stderr == ""


def test_replay_json_is_the_result_object_and_nothing_else_on_stdout(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke(
        "--json", "replay", demo_ids["declined"], "--db", db, "--flows", "journal.demo"
    )
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["verdict"] == "ok"
    assert data["execution_id"] == demo_ids["declined"]
    assert data["steps_checked"] == 3
    assert data["divergence"] is None


def test_replay_of_a_missing_execution_exits_3(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    missing = "exec_" + "0" * 27
    result = invoke("replay", missing, "--db", db, "--flows", "journal.demo")
    assert result.exit_code == 3
    assert result.stderr.strip() == (
        f"journal: error: execution {missing} not found in tenant tenant_default"
    )
    assert result.stdout == ""


def test_replay_of_another_tenants_execution_exits_3_like_a_missing_one(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke(
        "replay", demo_ids["refund"], "--db", db, "--tenant", "tenant_other",
        "--flows", "journal.demo",
    )  # fmt: skip
    assert result.exit_code == 3
    assert f"{demo_ids['refund']} not found in tenant tenant_other" in result.stderr


def test_replay_against_a_flow_whose_step_output_type_changed_exits_4(
    invoke: Invoke, db: str, workdir: Path
) -> None:
    execution_id = record_calc(workdir, db)
    changed = write_module(workdir, CALC_CHANGED)
    result = invoke("replay", execution_id, "--db", db, "--flows", changed)
    assert result.exit_code == 4
    assert f"{execution_id}: schema_mismatch" in result.stdout
    assert "changed:" in result.stdout
    assert "t.calc.double" in result.stdout


def test_replay_against_a_flow_that_behaves_differently_exits_5_with_a_diff(
    invoke: Invoke, db: str, workdir: Path
) -> None:
    execution_id = record_calc(workdir, db, x=5)
    diverged = write_module(workdir, CALC_DIVERGED)
    result = invoke("replay", execution_id, "--db", db, "--flows", diverged)
    assert result.exit_code == 5
    assert f"{execution_id}: diverged" in result.stdout
    assert "at step index 0" in result.stdout
    assert '-  "value": 10' in result.stdout
    assert '+  "value": 15' in result.stdout


def test_replay_of_an_edited_database_row_exits_6_naming_the_sequence(
    invoke: Invoke, db: str, db_path: Path, demo_ids: dict[str, str]
) -> None:
    edit_payload(db_path, demo_ids["refund"], seq=1)
    result = invoke("replay", demo_ids["refund"], "--db", db, "--flows", "journal.demo")
    assert result.exit_code == 6
    assert f"{demo_ids['refund']}: integrity" in result.stdout
    assert "chain broken at seq 1" in result.stdout


def test_replay_without_the_flow_code_exits_1_and_says_how_to_load_it(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke("replay", demo_ids["refund"], "--db", db)
    assert result.exit_code == 1
    assert "not_rerun" in result.stdout
    assert "flow 'demo.refund' is not loaded" in result.stdout
    assert "--flows MODULE" in result.stderr


def test_replay_fold_only_exits_0_without_flow_code(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke("replay", demo_ids["refund"], "--db", db, "--fold-only")
    assert result.exit_code == 0
    assert "folded only (--fold-only)" in result.stdout


def test_replay_all_exits_with_the_worst_verdict_and_writes_junit(
    invoke: Invoke, db: str, db_path: Path, demo_ids: dict[str, str], workdir: Path
) -> None:
    edit_payload(db_path, demo_ids["refund"], seq=1)
    junit = workdir / "out.xml"
    result = invoke(
        "replay", "--all", "--db", db, "--flows", "journal.demo",
        "--junit", str(junit),
    )  # fmt: skip
    assert result.exit_code == 6
    assert "4 replayed: 3 ok, 1 integrity" in result.stdout
    xml = junit.read_text()
    assert 'tests="4"' in xml
    assert 'failures="1"' in xml


def test_replay_all_filters_by_flow_and_state_and_limit(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke(
        "replay", "--all", "--flow", "demo.refund", "--state", "completed",
        "--limit", "5", "--db", db, "--flows", "journal.demo", "--json",
    )  # fmt: skip
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    replayed = {r["execution_id"] for r in data["results"]}
    assert replayed == {demo_ids["refund"], demo_ids["declined"]}
    assert data["counts"]["ok"] == 2
    assert data["ok"] is True


def test_replay_file_needs_no_store(
    invoke: Invoke, db: str, demo_ids: dict[str, str], workdir: Path
) -> None:
    export = invoke("export", demo_ids["refund"], "--db", db, "-o", "refund.jsonl")
    assert export.exit_code == 0
    result = invoke(
        "replay", "--file", "refund.jsonl", "--flows", "journal.demo",
        "--db", f"sqlite:///{workdir / 'absent.db'}",
    )  # fmt: skip
    assert result.exit_code == 0
    assert "2 replayed: 2 ok" in result.stdout
    assert not (workdir / "absent.db").exists()


def test_replay_file_that_is_malformed_exits_1_naming_the_line(
    invoke: Invoke, workdir: Path
) -> None:
    (workdir / "bad.jsonl").write_text('{"format": "journal-export/1"\n')
    result = invoke("replay", "--file", "bad.jsonl", "--flows", "journal.demo")
    assert result.exit_code == 1
    assert "bad.jsonl:1:" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_replay_needs_exactly_one_of_an_id_all_or_file(invoke: Invoke) -> None:
    result = invoke("replay")
    assert result.exit_code == 2
    assert "give one of EXECUTION_ID, --all or --file FILE" in result.stderr


def test_replay_filters_without_all_are_a_usage_error(invoke: Invoke) -> None:
    result = invoke("replay", "exec_" + "0" * 27, "--state", "Completed")
    assert result.exit_code == 2
    assert "need --all" in result.stderr


def test_recorded_calc_replays_clean_with_its_own_code(
    invoke: Invoke, db: str, workdir: Path
) -> None:
    execution_id = record_calc(workdir, db)
    same = write_module(workdir, CALC_V1)
    result = invoke("replay", execution_id, "--db", db, "--flows", same)
    assert result.exit_code == 0
    assert f"{execution_id}: ok" in result.stdout
