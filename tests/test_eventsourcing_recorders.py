"""eventsourcing's own AggregateRecorderTestCase, run against our three stores.

Our stores are eventsourcing recorders (docs/design.md §6) through
`journal.recorder.StoreRecorder`: its own test case
must pass against each of them unchanged.
"""

from __future__ import annotations

import os
import tempfile

import pytest

from journal.ids import new_execution_id
from journal.recorder import StoreRecorder
from journal.urls import open_store
from tests.conftest import require_postgres

try:
    # eventsourcing's test module imports its AES cipher, which needs
    # pycryptodome (eventsourcing[crypto]); the recorder test case does not.
    from eventsourcing.tests.persistence import AggregateRecorderTestCase
except ModuleNotFoundError as missing:  # pragma: no cover - environment guard
    if os.environ.get("CI") == "true":
        raise ModuleNotFoundError(
            f"{missing}: eventsourcing's recorder test cases need pycryptodome "
            "(the test extra must install eventsourcing[crypto])"
        ) from missing
    pytest.skip(
        f"eventsourcing's recorder test cases cannot be imported: {missing}",
        allow_module_level=True,
    )


class _OurRecorder(AggregateRecorderTestCase):
    """eventsourcing's AggregateRecorderTestCase with our ids and our stores."""

    __test__ = False

    def new_originator_id(self) -> str:
        # Fresh random ids: PostgreSQL's tables are shared with other tests.
        return new_execution_id()

    def open_url(self) -> str:
        raise NotImplementedError

    def create_recorder(self) -> StoreRecorder:
        store = open_store(self.open_url())
        self.addCleanup(store.close)
        return StoreRecorder(store)


class TestMemoryStoreIsAnEventsourcingRecorder(_OurRecorder):
    __test__ = True

    def open_url(self) -> str:
        return "memory://"


class TestSQLiteStoreIsAnEventsourcingRecorder(_OurRecorder):
    __test__ = True

    def open_url(self) -> str:
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        return f"sqlite:///{directory.name}/recorder.db"


@pytest.mark.postgres
class TestPostgresStoreIsAnEventsourcingRecorder(_OurRecorder):
    __test__ = True

    def open_url(self) -> str:
        return require_postgres()
