"""eventsourcing's ApplicationRecorder and TrackingRecorder test cases, run
against the journal's store-wide log on memory, SQLite and PostgreSQL.

Each test gets a fresh store (a named memory store, a new SQLite file, a new
PostgreSQL schema dropped afterwards). ``optional_test_insert_subscribe``,
which the test case does not call by itself, runs too. ``test_performance``
asserts nothing, so it is not run (set to None, which unittest skips).
"""

from __future__ import annotations

import os
import secrets
import tempfile

import psycopg
import pytest

from journal.ids import new_execution_id
from journal.persistence import LogRecorder, StoreTrackingRecorder
from journal.store import Store
from journal.urls import open_store
from tests.conftest import SESSION_SCHEMA, in_schema, require_postgres, server_url

try:
    from eventsourcing.tests.persistence import (
        ApplicationRecorderTestCase,
        TrackingRecorderTestCase,
    )
except ModuleNotFoundError as missing:  # pragma: no cover - environment guard
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(f"eventsourcing's test cases: {missing}", allow_module_level=True)


def fresh_store(backend: str, cleanups: list[object]) -> Store:
    """A new, empty store of `backend`; `cleanups` gets what closes it."""
    if backend == "memory":
        return open_store(f"memory://log{secrets.token_hex(8)}")
    if backend == "sqlite":
        directory = tempfile.TemporaryDirectory()
        cleanups.append(directory.cleanup)
        return open_store(f"sqlite:///{directory.name}/log.db")
    require_postgres()
    schema = f"{SESSION_SCHEMA}_{secrets.token_hex(4)}"
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")

    def drop() -> None:
        with psycopg.connect(server_url(), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")

    cleanups.append(drop)
    return open_store(in_schema(server_url(), schema))


class _LogCase(ApplicationRecorderTestCase[LogRecorder]):
    __test__ = False
    backend = ""
    test_performance = None  # type: ignore[assignment]  # asserts nothing

    def new_originator_id(self) -> str:
        return new_execution_id()

    def create_recorder(self) -> LogRecorder:
        cleanups: list[object] = []
        store = fresh_store(self.backend, cleanups)
        for cleanup in cleanups:
            self.addCleanup(cleanup)  # type: ignore[arg-type]
        self.addCleanup(store.close)
        return LogRecorder(store)

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TestMemoryLogIsAnApplicationRecorder(_LogCase):
    __test__ = True
    backend = "memory"


class TestSQLiteLogIsAnApplicationRecorder(_LogCase):
    __test__ = True
    backend = "sqlite"


@pytest.mark.postgres
class TestPostgresLogIsAnApplicationRecorder(_LogCase):
    __test__ = True
    backend = "postgres"


class _TrackingCase(TrackingRecorderTestCase):
    __test__ = False
    backend = ""

    def create_recorder(self) -> StoreTrackingRecorder:
        cleanups: list[object] = []
        store = fresh_store(self.backend, cleanups)
        for cleanup in cleanups:
            self.addCleanup(cleanup)  # type: ignore[arg-type]
        self.addCleanup(store.close)
        return StoreTrackingRecorder(store)


class TestMemoryStoreIsATrackingRecorder(_TrackingCase):
    __test__ = True
    backend = "memory"


class TestSQLiteStoreIsATrackingRecorder(_TrackingCase):
    __test__ = True
    backend = "sqlite"


@pytest.mark.postgres
class TestPostgresStoreIsATrackingRecorder(_TrackingCase):
    __test__ = True
    backend = "postgres"
