"""The audit report in a real browser: headless Chromium driven by Selenium.

Needs Debian's ``chromium`` and ``chromium-driver`` packages (``.ci/run``
installs them). Outside CI a missing browser skips these tests, saying so;
under ``CI=true`` it fails them. One browser session serves the module.
Screenshots go to ``test-artifacts/report/`` (or ``$JOURNAL_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import journal
from benchmarks.report_html import render_many
from fixtures import flows
from journal.timeline import build_timeline
from replay.audit import subjects_from_file
from replay.html_report import ChainStatus, Page, Subject, render_report

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ROOT = Path(__file__).resolve().parent.parent
TODAYS_FLOWS = [flows.orders, flows.shipping, flows.fulfilment]
REPORTS = {
    "clean": ("clean_current.jsonl", True),
    "diverged": ("diverged.jsonl", True),
    "tampered": ("tampered.jsonl", True),
    "retried": ("retried_step.jsonl", False),
    "waited": ("waited_for_input.jsonl", False),
    "child": ("child_execution.jsonl", True),
    "schema": ("schema_mismatch.jsonl", True),
}
MISSING = (
    "BROWSER TESTS NOT RUN: Debian's chromium and chromium-driver are not "
    "installed (apt-get install -y chromium chromium-driver)"
)


def artifacts() -> Path:
    folder = Path(
        os.environ.get("JOURNAL_TEST_ARTIFACTS", ROOT / "test-artifacts")
    ).joinpath("report")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole module."""
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu"):
        options.add_argument(argument)  # --no-sandbox: the tests run as root
    options.add_argument("--window-size=1400,1100")
    options.set_capability(
        "goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"}
    )
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("reports")
    paths = {}
    for key, (name, with_replay) in REPORTS.items():
        subjects = subjects_from_file(
            FIXTURES / name, TODAYS_FLOWS, with_replay=with_replay
        )
        path = folder / f"{key}.html"
        path.write_text(render_report(Page(subjects), generated_at="test"), "utf-8")
        paths[key] = path
    return paths


def open_report(browser: Any, path: Path) -> None:
    browser.get_log("browser")  # drop what an earlier page logged
    browser.get_log("performance")
    browser.get(path.resolve().as_uri())
    assert browser.find_element("css selector", "body").get_attribute("data-ready")


def shoot(browser: Any, name: str) -> None:
    browser.save_screenshot(str(artifacts() / f"{name}.png"))


def rows(browser: Any) -> list[Any]:
    found: list[Any] = browser.find_elements("css selector", "#timeline button.row")
    return found


def step_row(browser: Any, name: str) -> Any:
    return next(r for r in rows(browser) if f" {name}" in r.text.splitlines()[0])


@pytest.mark.parametrize("key", list(REPORTS))
def test_the_page_loads_from_a_file_with_no_console_errors_and_no_requests(
    browser: Any, reports: dict[str, Path], key: str
) -> None:
    open_report(browser, reports[key])
    shoot(browser, key)

    errors = [e for e in browser.get_log("browser") if e["level"] != "INFO"]
    assert errors == []
    url = reports[key].resolve().as_uri()
    requested = [
        message["params"]["request"]["url"]
        for entry in browser.get_log("performance")
        if (message := json.loads(entry["message"])["message"])["method"]
        == "Network.requestWillBeSent"
    ]
    assert [u for u in requested if u != url and not u.startswith("data:")] == []


@pytest.mark.parametrize(("key", "steps"), [("clean", 3), ("retried", 4)])
def test_the_timeline_has_one_bar_per_step(
    browser: Any, reports: dict[str, Path], key: str, steps: int
) -> None:
    open_report(browser, reports[key])

    bars = browser.find_elements("css selector", "#timeline button.row.step .bar")
    assert len(bars) == steps
    assert all(bar.size["width"] >= 3 for bar in bars)


def test_clicking_a_step_shows_its_output(
    browser: Any, reports: dict[str, Path]
) -> None:
    open_report(browser, reports["clean"])

    step_row(browser, "subtotal").click()

    output = browser.find_element("css selector", "#step-output").text
    assert output.strip() == "1998"
    assert "Step #1: subtotal" in browser.find_element("id", "details").text
    shoot(browser, "clean-step-clicked")


def test_pressing_enter_on_a_step_shows_its_output(
    browser: Any, reports: dict[str, Path]
) -> None:
    from selenium.webdriver.common.keys import Keys

    open_report(browser, reports["clean"])
    first = rows(browser)[0]
    first.send_keys(Keys.ARROW_DOWN)  # moves the focus to the next step
    focused = browser.switch_to.active_element

    focused.send_keys(Keys.ENTER)

    assert "subtotal" in focused.text
    assert browser.find_element("css selector", "#step-output").text.strip() == "1998"
    assert focused == browser.switch_to.active_element  # the focus stays put
    status = browser.find_element("id", "status")  # read out by screen readers
    assert status.get_attribute("textContent") == (
        "Showing the details of step #1 subtotal"
    )


def test_the_diverged_fixture_highlights_the_step_that_diverged(
    browser: Any, reports: dict[str, Path]
) -> None:
    open_report(browser, reports["diverged"])
    browser.set_window_size(1400, 1400)
    shoot(browser, "diverged-highlighted")  # the README's picture
    browser.set_window_size(1400, 1100)

    (highlighted,) = browser.find_elements("css selector", "#timeline .row.diverged")
    assert "write_note" in highlighted.text
    assert "diverged" in highlighted.get_attribute("aria-label")
    verdict = browser.find_element("id", "replay-verdict").text
    assert "Replay: diverged" in verdict
    assert "2498" in verdict
    assert "1998" in verdict
    details = browser.find_element("id", "details").text
    assert "Recorded" in details
    assert "Produced today" in details


def test_the_tampered_fixture_shows_the_chain_failure_at_the_top(
    browser: Any, reports: dict[str, Path]
) -> None:
    open_report(browser, reports["tampered"])

    status = browser.find_element("id", "chain-status")
    assert "Chain broken at seq 6" in status.text
    timeline = browser.find_element("id", "timeline")
    assert status.location["y"] < timeline.location["y"]
    broken = browser.find_elements("css selector", ".event-row.broken")
    assert [row.text.split()[0] for row in broken] == [str(n) for n in range(6, 11)]


def test_a_schema_mismatch_lists_the_changes(
    browser: Any, reports: dict[str, Path]
) -> None:
    open_report(browser, reports["schema"])

    changes = browser.find_elements("css selector", "#schema-changes li")
    assert any("golden_orders.subtotal" in change.text for change in changes)


def test_the_event_table_filters_by_step_and_by_event_type(
    browser: Any, reports: dict[str, Path]
) -> None:
    from selenium.webdriver.support.ui import Select

    open_report(browser, reports["retried"])
    events = "#report .event-row"
    assert len(browser.find_elements("css selector", events)) == 12

    Select(browser.find_element("id", "filter-type")).select_by_value("StepFailed")
    (failed,) = browser.find_elements("css selector", events)
    assert "#0 fetch_items" in failed.text
    Select(browser.find_element("id", "filter-type")).select_by_value("")
    Select(browser.find_element("id", "filter-step")).select_by_value("1")
    retried = browser.find_elements("css selector", events)
    assert [row.text.split()[3] for row in retried] == ["StepStarted", "StepCompleted"]


def test_a_retry_links_to_the_call_it_retries_and_a_wait_is_a_span(
    browser: Any, reports: dict[str, Path]
) -> None:
    open_report(browser, reports["retried"])
    step_row(browser, "fetch_items").click()  # the first: the failed call
    assert "NetworkError" in rows(browser)[0].text
    retry = rows(browser)[1]
    assert "retry of #0" in retry.text

    open_report(browser, reports["waited"])
    (wait,) = browser.find_elements("css selector", "#timeline .row.interval")
    assert "Waiting (approval)" in wait.text


def test_a_child_execution_in_the_same_file_is_one_click_away(
    browser: Any, reports: dict[str, Path]
) -> None:
    open_report(browser, reports["child"])
    title = browser.find_element("id", "title").text
    assert "golden_fulfilment" in title

    from selenium.webdriver.support.ui import WebDriverWait

    browser.find_element("css selector", "table.meta a[href^='#exec_']").click()

    # The page follows the link on its hashchange event, which comes later.
    WebDriverWait(browser, 10).until(
        lambda b: "golden_shipping" in b.find_element("id", "title").text
    )
    assert rows(browser)[0].text.endswith("book_courier")


def test_ten_thousand_steps_render_only_the_rows_in_view(
    browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.keys import Keys

    text, _seconds, steps = render_many(10_000)
    path = tmp_path / "many.html"
    path.write_text(text, encoding="utf-8")
    open_report(browser, path)

    assert f"({steps} steps" in browser.find_element("id", "timeline-title").text
    assert len(rows(browser)) < 100
    first = rows(browser)[0]
    first.send_keys(Keys.END)
    last = browser.switch_to.active_element
    last.send_keys(Keys.ENTER)
    assert f"#{steps - 1} " in last.text
    assert browser.find_element("css selector", "#step-output").text.strip()
    shoot(browser, "ten-thousand-steps")


def test_printing_shows_every_row_and_hides_the_controls(
    browser: Any, tmp_path: Path
) -> None:
    text, _seconds, steps = render_many(300)
    path = tmp_path / "three-hundred.html"
    path.write_text(text, encoding="utf-8")
    open_report(browser, path)
    assert len(rows(browser)) < 100  # on screen: only the rows in view
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        browser.execute_script("window.dispatchEvent(new Event('beforeprint'))")

        filters = browser.find_element("css selector", ".filters")
        assert not filters.is_displayed()
        intervals = browser.find_elements("css selector", "#timeline .row.interval")
        assert len(rows(browser)) == steps + len(intervals)
    finally:
        browser.execute_script("window.dispatchEvent(new Event('afterprint'))")
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})


def test_a_long_value_is_collapsed_until_expanded(browser: Any, tmp_path: Path) -> None:
    with journal.open("memory://", tenant="tenant_flows") as journal_:
        handle = journal_.create()
        handle.start()
        step = handle.start_step("list_everything", input={"all": True})
        handle.complete_step(step, output=[f"item {n}" for n in range(300)])
        rows_ = journal_.history(handle.id).rows
    timeline = build_timeline(handle.id, rows_)
    subject = Subject(timeline, "tenant_flows", ChainStatus.ok(timeline.head))
    path = tmp_path / "long.html"
    path.write_text(render_report(Page([subject]), generated_at="now"), "utf-8")
    open_report(browser, path)
    step_row(browser, "list_everything").click()
    output = browser.find_element("css selector", "#step-output pre")
    assert "item 299" not in output.text

    expand = browser.find_element("css selector", "#step-output button.expand")
    expand.click()

    assert expand.get_attribute("aria-expanded") == "true"
    assert "item 299" in output.text
