"""The audit report as a file: self-contained, deterministic, and honest about
broken chains (the browser's view is in `test_report_browser`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import journal
from benchmarks.report_html import render_many
from fixtures import flows
from journal.timeline import build_timeline
from replay.audit import subjects_from_file
from replay.html_report import ChainStatus, Page, Subject, render_report
from tests.cli_support import Invoke, edit_payload

pytest_plugins = ["tests.cli_fixtures"]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TODAYS_FLOWS = [flows.orders, flows.shipping, flows.fulfilment]
GENERATED = re.compile(r"Generated at [^<]*")


def report_of(name: str, *, with_replay: bool = False, at: str = "then") -> str:
    subjects = subjects_from_file(
        FIXTURES / name, TODAYS_FLOWS, with_replay=with_replay
    )
    return render_report(Page(subjects), generated_at=at)


def island(text: str) -> dict[str, Any]:
    """The report's data, read back out of the page."""
    found = re.search(
        r'<script type="application/json" id="journal-data">(.*?)</script>', text, re.S
    )
    assert found is not None
    data: dict[str, Any] = json.loads(found[1].replace("<\\/", "</"))
    return data


def test_the_same_journal_gives_the_same_bytes_apart_from_the_generated_at_line() -> (
    None
):
    first = report_of("child_execution.jsonl", with_replay=True, at="2026-01-01")
    second = report_of("child_execution.jsonl", with_replay=True, at="2026-12-31")

    assert first != second
    assert GENERATED.sub("", first) == GENERATED.sub("", second)


@pytest.mark.parametrize("name", ["clean_current.jsonl", "tampered.jsonl"])
def test_a_report_needs_nothing_from_the_network(name: str) -> None:
    text = report_of(name)

    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "@import" not in text
    assert "@font-face" not in text
    assert "url(" not in text
    assert "default-src 'none'" in text  # the page's policy forbids any fetch
    assert text.count("<script") == 2  # the data island and the page's own script


def test_a_value_that_looks_like_a_closing_tag_cannot_end_the_data_island() -> None:
    with journal.open("memory://", tenant="tenant_flows") as journal_:
        handle = journal_.create(input={"note": "</script><script>alert(1)</script>"})
        execution_id = handle.id
        rows = journal_.history(execution_id).rows
    timeline = build_timeline(execution_id, rows)
    subject = Subject(timeline, "tenant_flows", ChainStatus.ok(timeline.head))
    text = render_report(Page([subject]), generated_at="now")

    assert "</script><script>alert" not in text
    assert island(text)["executions"][0]["input"]["note"].startswith("</script>")


def test_the_tampered_fixture_is_reported_broken_at_the_edited_sequence() -> None:
    (execution,) = island(report_of("tampered.jsonl", with_replay=True))["executions"]

    assert execution["chain"]["verified"] is False
    assert execution["chain"]["seq"] == 6
    assert "chain broken at seq 6" in execution["chain"]["message"]
    assert execution["replay"]["verdict"] == "integrity"
    assert len(execution["events"]) == 10  # shown as stored, all of them


def test_the_diverged_fixture_names_the_step_that_diverged() -> None:
    (execution,) = island(report_of("diverged.jsonl", with_replay=True))["executions"]

    divergence = execution["replay"]["divergence"]
    step = execution["steps"][divergence["step"]]
    assert divergence["index"] == 2
    assert step[execution["step_fields"].index("name")] == "write_note"
    assert divergence["recorded_value"] == {"total_cents": 2498}
    assert divergence["produced_value"] == {"total_cents": 1998}


def test_a_schema_mismatch_lists_what_changed() -> None:
    data = island(report_of("schema_mismatch.jsonl", with_replay=True))

    (execution,) = data["executions"]
    assert execution["replay"]["verdict"] == "schema_mismatch"
    assert any(
        "golden_orders.subtotal" in change
        for change in execution["replay"]["schema_changes"]
    )


def test_retries_nesting_and_waits_are_laid_out_for_the_timeline() -> None:
    (retried,) = island(report_of("retried_step.jsonl"))["executions"]
    (waited,) = island(report_of("waited_for_input.jsonl"))["executions"]

    fields = retried["step_fields"]
    retry_of = [row[fields.index("retry_of")] for row in retried["steps"]]
    assert retry_of == [-1, 0, -1, -1]
    (interval,) = waited["intervals"]
    assert (interval["kind"], interval["reason"]) == ("waiting", "approval")
    assert interval["end"] > interval["start"]


def test_a_file_with_a_child_holds_both_and_each_names_the_other() -> None:
    parent, child = island(report_of("child_execution.jsonl"))["executions"]

    assert parent["children"] == [child["id"]]
    assert child["parent"]["execution_id"] == parent["id"]


def test_ten_thousand_steps_stay_under_ten_megabytes() -> None:
    text, _seconds, steps = render_many(10_000)

    assert steps == 10_000
    assert len(text.encode()) < 10_000_000


# --- the command ----------------------------------------------------------


@pytest.fixture
def orders_in_store(db: str) -> dict[str, str]:
    """Today's golden_orders and golden_fulfilment recorded into `db`."""
    with journal.open(db) as journal_:
        order = flows.orders.run(journal_, "ord_1")
        fulfilment = flows.fulfilment.run(journal_, "ord_2")
        child = journal_.list(journal.ListFilter(parent_id=fulfilment.id))[0]
    return {
        "order": order.id,
        "fulfilment": fulfilment.id,
        "child": child.execution_id,
    }


def test_journal_report_writes_one_file_for_an_execution_in_the_store(
    invoke: Invoke, db: str, workdir: Path, orders_in_store: dict[str, str]
) -> None:
    out = workdir / "report.html"

    result = invoke("--db", db, "report", orders_in_store["order"], "-o", str(out))

    assert result.exit_code == 0, result.output
    (execution,) = island(out.read_text())["executions"]
    assert execution["id"] == orders_in_store["order"]
    assert execution["chain"]["verified"] is True
    assert execution["binding"] == "v2"
    assert execution["flow"] == "golden_orders"


def test_journal_report_of_a_broken_chain_still_writes_and_exits_6(
    invoke: Invoke,
    db: str,
    db_path: Path,
    workdir: Path,
    orders_in_store: dict[str, str],
) -> None:
    edit_payload(db_path, orders_in_store["order"], 4)
    out = workdir / "report.html"

    result = invoke("--db", db, "report", orders_in_store["order"], "-o", str(out))

    assert result.exit_code == 6
    assert "chain broken at seq 4" in result.stderr
    (execution,) = island(out.read_text())["executions"]
    assert (execution["chain"]["verified"], execution["chain"]["seq"]) == (False, 4)


def test_journal_report_with_replay_exits_with_the_verdicts_code(
    invoke: Invoke, workdir: Path
) -> None:
    out = workdir / "diverged.html"

    result = invoke(
        "--tenant", "tenant_golden", "--flows", "fixtures.flows", "report",
        "--file", str(FIXTURES / "diverged.jsonl"), "--replay", "-o", str(out),
    )  # fmt: skip

    assert result.exit_code == 5, result.output
    assert island(out.read_text())["executions"][0]["replay"]["verdict"] == "diverged"


def test_journal_report_all_writes_a_file_per_execution_and_an_index(
    invoke: Invoke, db: str, workdir: Path, orders_in_store: dict[str, str]
) -> None:
    out = workdir / "reports"

    result = invoke(
        "--db", db, "report", "--all", "--flow", "golden_fulfilment", "-o", str(out)
    )

    assert result.exit_code == 0, result.output
    parent, child = orders_in_store["fulfilment"], orders_in_store["child"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["index.html", f"{parent}.html", f"{child}.html"]
    )
    index = (out / "index.html").read_text()
    assert f'href="{parent}.html"' in index
    assert f'href="{child}.html"' in index
    links = island((out / f"{parent}.html").read_text())["links"]
    assert links[child] == f"{child}.html"


def test_journal_report_refuses_two_subjects_at_once(invoke: Invoke) -> None:
    result = invoke("report", "exec_x", "--file", "x.jsonl", "-o", "r.html")

    assert result.exit_code == 2
    assert "give one of EXECUTION_ID, --all or --file" in result.stderr


def test_the_console_script_reports_a_tampered_export_and_exits_6(
    run_script: Callable[..., subprocess.CompletedProcess[str]], workdir: Path
) -> None:
    result = run_script(
        "report", "--file", str(FIXTURES / "tampered.jsonl"), "-o", "t.html"
    )

    assert result.returncode == 6, result.stderr
    assert "chain broken at seq 6" in result.stderr
    assert "Chain broken" in (workdir / "t.html").read_text()


@pytest.mark.parametrize(("ci", "exit_code"), [("", 0), ("true", 1)])
def test_without_a_browser_the_browser_tests_skip_loudly_but_fail_under_ci(
    ci: str, exit_code: int
) -> None:
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(Path(sys.executable).parent)  # no chromium on it
    if ci:
        env["CI"] = ci
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/test_report_browser.py", "-k", "one_bar_per_step"],
        cwd=root, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip

    assert result.returncode == exit_code, result.stdout
    assert "BROWSER TESTS NOT RUN" in result.stdout


def test_a_report_shows_what_the_stores_ledger_sealed_of_the_execution(
    invoke: Invoke, db: str, workdir: Path, orders_in_store: dict[str, str]
) -> None:
    order = orders_in_store["order"]
    out = workdir / "report.html"
    invoke("--db", db, "report", order, "-o", str(out))
    assert island(out.read_text())["executions"][0]["ledger"] is None  # no ledger
    key = str(workdir / "ledger.key")
    assert (
        invoke("ledger", "keygen", "--out", key, "--origin", "t.example").exit_code == 0
    )
    assert invoke("--db", db, "ledger", "init", "--origin", "t.example").exit_code == 0
    sealed = invoke("--db", db, "seal", env={"JOURNAL_LEDGER_KEY_FILE": key})
    assert sealed.exit_code == 0, sealed.output
    with journal.open(db) as journal_:
        head_seq = journal_.summary(order).head_seq

    result = invoke("--db", db, "report", order, "-o", str(out))

    assert result.exit_code == 0, result.output
    ledger = island(out.read_text())["executions"][0]["ledger"]
    assert ledger.startswith(f"sealed at seq {head_seq} (leaf ")


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        ({"approver": "alice"}, ("alice", "approved")),
        ({"approver": "bob", "denied": True, "reason": "too much"}, ("bob", "denied")),
    ],
)
def test_a_wait_for_approval_shows_who_answered_and_how(
    answer: dict[str, Any], shown: tuple[str, str]
) -> None:
    with journal.open("memory://", tenant="tenant_flows") as journal_:
        handle = journal_.create()
        handle.start()
        handle.wait("approval", "refund over 20 EUR")
        handle.receive_input({"ok": True}, **answer)
        rows = journal_.history(handle.id).rows
    timeline = build_timeline(handle.id, rows)
    subject = Subject(timeline, "tenant_flows", ChainStatus.ok(timeline.head))

    (interval,) = island(render_report(Page([subject]), generated_at="now"))[
        "executions"
    ][0]["intervals"]

    assert (interval["approver"], interval["outcome"]) == shown
    assert interval["detail"] == "refund over 20 EUR"


def test_a_forks_report_names_its_origin_and_links_it_when_rendered_together(
    invoke: Invoke, db: str, workdir: Path, orders_in_store: dict[str, str]
) -> None:
    order = orders_in_store["order"]
    forked = invoke(
        "--db", db, "--flows", "fixtures.flows", "--json",
        "fork", order, "--at-step", "1",
    )  # fmt: skip
    assert forked.exit_code == 0, forked.output
    fork_id = json.loads(forked.stdout)["execution_id"]
    out = workdir / "reports"

    result = invoke(
        "--db", db, "report", "--all", "--flow", "golden_orders", "-o", str(out)
    )

    assert result.exit_code == 0, result.output
    data = island((out / f"{fork_id}.html").read_text())
    assert data["executions"][0]["origin"]["execution_id"] == order
    assert data["links"][order] == f"{order}.html"
    assert (out / f"{order}.html").exists()
