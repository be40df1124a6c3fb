"""``list``, ``show``, ``verify``, ``diff`` and ``schema``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from journal.packing import pack, unpack
from tests.cli_support import Invoke, drop_sqlite_guards, edit_payload

pytest_plugins = ["tests.cli_fixtures"]


def test_list_prints_a_table_newest_first(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke("list", "--db", db)
    assert result.exit_code == 0
    header, *rows = result.stdout.splitlines()
    assert header.split() == [
        "id",
        "flow",
        "state",
        "steps",
        "started",
        "duration",
        "chain",
    ]
    assert [row.split()[0] for row in rows] == [
        demo_ids["failed"],
        demo_ids["declined"],
        demo_ids["child"],
        demo_ids["refund"],
    ]


def test_an_unknown_state_is_a_usage_error_listing_the_states(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke("list", "--db", db, "--state", "Bogus")
    assert result.exit_code == 2
    assert "'Bogus' is not a state" in result.stderr
    assert "Completed" in result.stderr
    lower = invoke("list", "--db", db, "--state", "completed", "--json")
    assert lower.exit_code == 0, lower.stderr
    assert {e["state"] for e in json.loads(lower.stdout)["executions"]} == {"Completed"}


def test_list_json_filters_by_flow_state_and_limit(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke(
        "list", "--db", db, "--json", "--flow", "demo.refund", "--state", "Completed",
        "--limit", "1",
    )  # fmt: skip
    assert result.exit_code == 0
    (only,) = json.loads(result.stdout)["executions"]
    assert only["execution_id"] == demo_ids["declined"]
    assert only["state"] == "Completed"
    assert only["steps"] == 3
    assert only["head"].partition(":")[0].isdigit()


def test_show_prints_the_summary_and_steps_with_retries_and_errors(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke("show", demo_ids["refund"], "--db", db)
    assert result.exit_code == 0
    assert "state      Completed" in result.stdout
    assert "6 steps" in result.stdout
    assert "NetworkError: payment gateway timed out" in result.stdout
    assert "retry of #3" in result.stdout
    for step_type in ("ToolNode", "LlmNode", "FunctionNode", "GraphNode"):
        assert step_type in result.stdout


def test_show_at_n_gives_the_state_after_event_n(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke("--json", "show", demo_ids["refund"], "--db", db, "--at", "4")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["at"] == 4
    assert data["execution"]["state"] == "Running"
    assert data["execution"]["events"] == 4
    assert [s["name"] for s in data["steps"]] == ["fetch_order"]


def test_show_events_lists_the_raw_events(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke("show", demo_ids["declined"], "--db", db, "--events", "--json")
    assert result.exit_code == 0
    events = json.loads(result.stdout)["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "ExecutionCreated"
    assert events[-1]["type"] == "ExecutionCompleted"


def test_show_of_the_failed_run_names_its_error(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke("show", demo_ids["failed"], "--db", db, "--events")
    assert result.exit_code == 0
    assert "PolicyViolation: account of grace@example.com is blocked" in result.stdout
    assert "ExecutionFailed" in result.stdout


def test_show_at_an_event_that_does_not_exist_exits_1_naming_it(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke("show", demo_ids["declined"], "--db", db, "--at", "999")
    assert result.exit_code == 1
    assert f"{demo_ids['declined']}: no event 999" in result.stderr


def test_verify_prints_a_head_that_expect_head_accepts(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    first = invoke("verify", demo_ids["refund"], "--db", db, "--json")
    assert first.exit_code == 0
    head = json.loads(first.stdout)["head"]
    assert head.startswith("17:")
    again = invoke("verify", demo_ids["refund"], "--db", db, "--expect-head", head)
    assert again.exit_code == 0
    assert f"head {head}" in again.stdout


def test_verify_with_a_wrong_expected_head_exits_6(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    wrong = "18:" + "ab" * 32
    result = invoke("verify", demo_ids["refund"], "--db", db, "--expect-head", wrong)
    assert result.exit_code == 6
    assert f"{demo_ids['refund']}: head is 17:" in result.stderr


def test_verify_of_an_edited_row_exits_6_naming_the_sequence(
    invoke: Invoke, db: str, db_path: Path, demo_ids: dict[str, str]
) -> None:
    edit_payload(db_path, demo_ids["refund"], seq=3)
    result = invoke("verify", demo_ids["refund"], "--db", db)
    assert result.exit_code == 6
    assert result.stderr.strip() == (
        f"journal: error: {demo_ids['refund']}: chain broken at seq 3: stored hash "
        "does not match the event's bytes"
    )


def test_verify_all_reports_each_execution_and_exits_6_if_one_is_broken(
    invoke: Invoke, db: str, db_path: Path, demo_ids: dict[str, str]
) -> None:
    edit_payload(db_path, demo_ids["declined"], seq=2)
    result = invoke("verify", "--all", "--db", db, "--json")
    assert result.exit_code == 6
    data = json.loads(result.stdout)
    broken = [r["execution_id"] for r in data["results"] if not r["ok"]]
    assert broken == [demo_ids["declined"]]
    assert data["ok"] is False


def test_verify_malformed_expect_head_is_a_usage_error(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke("verify", demo_ids["refund"], "--db", db, "--expect-head", "x")
    assert result.exit_code == 2
    assert "expected N:HEX" in result.stderr


def test_diff_of_two_runs_says_where_they_differ_and_exits_0(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke("diff", demo_ids["refund"], demo_ids["declined"], "--db", db)
    assert result.exit_code == 0
    assert "differ in" in result.stdout
    assert "step 3 missing" in result.stdout


def test_diff_of_an_execution_with_itself_says_same(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke("diff", demo_ids["refund"], demo_ids["refund"], "--db", db)
    assert result.exit_code == 0
    assert "same: step order, inputs, outputs, errors and states match" in (
        result.stdout
    )


def test_diff_json_lists_steps_side_by_side(
    invoke: Invoke, db: str, demo_ids: dict[str, str]
) -> None:
    result = invoke(
        "diff", demo_ids["refund"], demo_ids["declined"], "--db", db, "--json"
    )
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["same"] is False
    assert data["execution"]["differs"] == ["input", "output"]
    assert data["steps"][0]["a"]["name"] == data["steps"][0]["b"]["name"]
    assert data["steps"][5]["b"] is None


def test_schema_prints_hash_and_document_of_each_loaded_flow(invoke: Invoke) -> None:
    from journal import demo

    result = invoke("schema", "--flows", "journal.demo", "--json")
    assert result.exit_code == 0
    flows = {f["name"]: f for f in json.loads(result.stdout)["flows"]}
    assert set(flows) == {"demo.refund", "demo.notify"}
    assert flows["demo.refund"]["schema_version"] == demo.refund.schema_version
    assert flows["demo.refund"]["document"]["flow"] == "demo.refund"


def test_schema_without_flows_exits_1_saying_how_to_load_them(invoke: Invoke) -> None:
    result = invoke("schema")
    assert result.exit_code == 1
    assert "no flows loaded" in result.stderr


def test_show_of_an_edited_history_displays_it_but_exits_6_saying_so(
    invoke: Invoke, db: str, db_path: Path, demo_ids: dict[str, str]
) -> None:
    execution_id = demo_ids["refund"]
    connection = sqlite3.connect(db_path)
    with connection:
        (key,) = connection.execute(
            "SELECT exec_key FROM journal_executions WHERE execution_id = ?",
            (execution_id,),
        ).fetchone()
        (payload,) = connection.execute(
            "SELECT payload FROM journal_events WHERE exec_key = ? AND seq = 17",
            (key,),
        ).fetchone()
        forged = unpack(payload).replace(b'"approved":true', b'"approved":false')
        assert forged != unpack(payload)
        drop_sqlite_guards(connection)
        connection.execute(
            "UPDATE journal_events SET payload = ? WHERE exec_key = ? AND seq = 17",
            (pack(forged), key),
        )
    connection.close()
    result = invoke("show", execution_id, "--db", db, "--json")
    assert result.exit_code == 6
    shown = json.loads(result.stdout)
    assert shown["chain"]["ok"] is False
    assert "chain broken at seq 17" in shown["chain"]["error"]
    assert shown["execution"]["output"]["approved"] is False
    assert "chain broken at seq 17" in result.stderr
