"""eventsourcing's own runners follow the journal, unchanged, on every backend.

`ProjectionRunner` builds the application and the view from the environment
(``PERSISTENCE_MODULE=journal.persistence``, ``JOURNAL_DB``), so a
``memory://NAME`` store must be the same one the test writes to. The mapper
hands each event over with its execution id, sequence and link.
"""

from __future__ import annotations

from typing import Any, ClassVar

from eventsourcing.persistence import Tracking
from eventsourcing.projection import (
    ApplicationSubscription,
    Projection,
    ProjectionRunner,
)

import journal
from journal import events as ev
from journal.persistence import JournalLog, LoggedEvent, StoreTrackingRecorder
from journal.urls import open_store
from tests.conftest import new_tenant


class Seen(StoreTrackingRecorder):
    """A view that keeps what it was handed (and tracks in the store)."""

    view_name = "seen"
    handed: ClassVar[list[LoggedEvent]] = []


class Collect(Projection[Seen]):
    """Records each event and its tracking (one transaction per event)."""

    name = "collect"

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        assert isinstance(domain_event, LoggedEvent)
        Seen.handed.append(domain_event)
        self.view.insert_tracking(tracking)


def start_after(url: str) -> None:
    """Track the view at the log's current end, so that on a store shared
    with other tests the runner follows only what this test writes."""
    store = open_store(url)
    try:
        store.sequence_log(wait=True)
        end = store.max_position()
        view = Seen(store)
        if end is not None and (view.max_tracking_id("journal") or 0) < end:
            view.insert_tracking(Tracking("journal", end))
    finally:
        store.close()


def record(url: str, tenant: str) -> tuple[str, list[tuple[int, bytes]]]:
    with journal.open(url, tenant=tenant) as j:
        handle = j.create(flow="projection.test")
        handle.start()
        handle.complete({"ok": True})
        rows = j.store.load_rows(str(handle.id), tenant)
        return str(handle.id), [(row.seq, row.hash) for row in rows]


def test_a_projection_runner_follows_the_journal_from_the_environment(
    store_url: str,
) -> None:
    tenant = new_tenant()
    start_after(store_url)
    execution_id, rows = record(store_url, tenant)
    env = {"PERSISTENCE_MODULE": "journal.persistence", "JOURNAL_DB": store_url}
    Seen.handed.clear()
    runner = ProjectionRunner(
        application_class=JournalLog,
        projection_class=Collect,
        view_class=Seen,
        env=env,
    )
    try:
        with runner:
            store = runner.view.store
            store.sequence_log(wait=True)
            runner.wait(store.max_position(), timeout=60)
    finally:
        runner.view.store.close()
    mine = [e for e in Seen.handed if e.execution_id == execution_id]
    assert [(e.seq, e.link) for e in mine] == rows
    assert {e.tenant_id for e in mine} == {tenant}
    assert isinstance(mine[0].event, ev.ExecutionCreated)
    assert isinstance(mine[-1].event, ev.ExecutionCompleted)
    positions = [e.position for e in Seen.handed]
    assert positions == sorted(set(positions))


def test_an_application_subscription_yields_events_with_their_tracking(
    store_url: str,
) -> None:
    tenant = new_tenant()
    execution_id, rows = record(store_url, tenant)
    app = JournalLog(
        {"PERSISTENCE_MODULE": "journal.persistence", "JOURNAL_DB": store_url}
    )
    try:
        got: list[tuple[LoggedEvent, Tracking]] = []
        with ApplicationSubscription(app) as subscription:
            for domain_event, tracking in subscription:
                assert isinstance(domain_event, LoggedEvent)
                logged = domain_event
                got.append((logged, tracking))
                if logged.execution_id == execution_id and logged.seq == len(rows):
                    break
    finally:
        app.close()
    mine = [(e, t) for e, t in got if e.execution_id == execution_id]
    assert [(e.seq, e.link) for e, _ in mine] == rows
    assert all(t.notification_id == e.position for e, t in mine)
    assert {t.application_name for _, t in mine} == {"journal"}
