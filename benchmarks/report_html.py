"""The audit report at scale: a 10,000-step execution rendered and opened.

`many_steps` builds a verified history directly (events encoded and
chained as a store would, no store needed): every 10th step has a nested
step, every 50th fails once and is retried, one wait for approval in the
middle. `measure` renders it, and, when Debian's ``chromium`` and
``chromedriver`` are installed, opens the file in headless Chromium and
times it until a step's details are shown after a click.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from journal import codec
from journal import events as ev
from journal.chain import Row, chain_rows, v1_genesis_link
from journal.ids import StepId, new_execution_id, new_step_id, parse_tenant_id
from journal.model import ErrorCategory, ExecutionError, StepSource, WaitReason
from journal.timeline import build_timeline
from replay.html_report import ChainStatus, Page, Subject, render_report

START = datetime(2026, 1, 1, tzinfo=UTC)


class _Clock:
    def __init__(self) -> None:
        self.ms = 0

    def tick(self, ms: int = 1) -> datetime:
        self.ms += ms
        return START + timedelta(milliseconds=self.ms)


def _step(clock: _Clock, n: int, parent: StepId | None = None) -> list[ev.Event]:
    step_id = new_step_id()
    started = ev.StepStarted(
        at=clock.tick(),
        step_id=step_id,
        step_type="ToolNode" if n % 3 else "LlmNode",
        name=f"step_{n % 7}",
        callable_id=f"bench.step_{n % 7}",
        parent_step_id=parent,
        input=codec.encode_value({"n": n, "query": f"item {n}"}),
    )
    events: list[ev.Event] = [started]
    if n % 50 == 49:
        error = ExecutionError(category=ErrorCategory.NETWORK_ERROR, message="reset")
        events.append(ev.StepFailed(at=clock.tick(2), step_id=step_id, error=error))
        retry_id = new_step_id()
        source = StepSource.retry(step_id, 2)
        events.append(
            ev.StepStarted(
                at=clock.tick(),
                step_id=retry_id,
                step_type=started.step_type,
                name=started.name,
                callable_id=started.callable_id,
                source=source,
                input=started.input,
            )
        )
        step_id = retry_id
    if parent is None and n % 10 == 0:
        events.extend(_step(clock, n + 1, parent=step_id))
    output = codec.encode_value({"ok": True, "n": n})
    events.append(
        ev.StepCompleted(
            at=clock.tick(2), step_id=step_id, output=output, duration_ms=2
        )
    )
    return events


def many_steps(n_steps: int, tenant: str = "tenant_bench") -> tuple[str, list[Row]]:
    """A completed execution of about `n_steps` steps, chained with SHA-256."""
    clock = _Clock()
    execution_id = new_execution_id()
    events: list[ev.Event] = [
        ev.ExecutionCreated(
            at=clock.tick(), tenant_id=parse_tenant_id(tenant), flow="bench.report"
        ),
        ev.ExecutionStarted(at=clock.tick()),
    ]
    steps = 0
    n = 0
    while steps < n_steps:
        if n == n_steps // 2:
            events.append(
                ev.ExecutionWaiting(at=clock.tick(), reason=WaitReason.APPROVAL)
            )
            events.append(ev.ExecutionResumed(at=clock.tick(500)))
        new = _step(clock, n)
        steps += sum(1 for e in new if isinstance(e, ev.StepStarted))
        events.extend(new)
        n += 1 if n % 10 else 2
    events.append(ev.ExecutionCompleted(at=clock.tick(), output=codec.encode_value(n)))
    payloads = [codec.encode(event) for event in events]
    return execution_id, chain_rows(v1_genesis_link(execution_id), 1, payloads)


def render_many(n_steps: int) -> tuple[str, float, int]:
    """The report of `many_steps(n_steps)`: HTML, render seconds, step count."""
    execution_id, rows = many_steps(n_steps)
    started = time.perf_counter()
    timeline = build_timeline(execution_id, rows)
    subject = Subject(timeline, "tenant_bench", ChainStatus.ok(timeline.head))
    text = render_report(Page([subject]), generated_at="benchmark")
    return text, time.perf_counter() - started, len(timeline.steps)


def browser_available() -> bool:
    return bool(shutil.which("chromium") and shutil.which("chromedriver"))


def open_in_browser(path: Path) -> dict[str, float]:
    """Open `path` in headless Chromium; seconds to ready and to interactive."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = Options()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(
        service=Service(shutil.which("chromedriver")), options=options
    )
    try:
        driver.get("about:blank")  # browser start-up is not the report's time
        started = time.perf_counter()
        driver.get(path.resolve().as_uri())
        ready_ms = driver.execute_script(
            "return performance.now() - 0;"  # since this navigation started
        )
        driver.find_element(By.CSS_SELECTOR, "button.row.step").click()
        WebDriverWait(driver, 10).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#step-output")
        )
        interactive = time.perf_counter() - started
        driver.execute_script(
            "var s = document.getElementById('timeline');"
            "s.scrollTop = s.scrollHeight / 2; s.dispatchEvent(new Event('scroll'));"
        )
        rows = driver.find_elements(By.CSS_SELECTOR, "#timeline button.row")
        return {
            "page_ready_ms": float(ready_ms),
            "open_to_interactive_s": interactive,
            "rows_in_document": float(len(rows)),
        }
    finally:
        driver.quit()


def measure(tmp: Path, n_steps: int) -> dict[str, Any]:
    """Render `n_steps` steps; size, render time, and browser times if possible."""
    text, seconds, steps = render_many(n_steps)
    path = tmp / "report-10k.html"
    path.write_text(text, encoding="utf-8")
    figures: dict[str, Any] = {
        "steps": steps,
        "file_bytes": path.stat().st_size,
        "render_s": seconds,
    }
    if browser_available():
        figures |= open_in_browser(path)
    return figures
