"""Shared fixtures: one parametrised store per backend, tenants per test.

PostgreSQL is the real server at ``JOURNAL_TEST_POSTGRES_URL`` (never a
mock). When it is unreachable its tests are skipped locally, but with
``CI=true`` they fail: CI must run every backend. Tests on PostgreSQL share
its tables with one another (and with concurrent runs), so each test works
only on executions it created, under a tenant of its own, and never drops or
truncates a table.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import journal
from journal.application import SNAPSHOT_EVERY
from journal.chain import Hasher
from journal.store import Store
from journal.urls import open_store

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("memory", "sqlite", "postgres")

settings.register_profile(
    "default",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "default")


def postgres_url() -> str:
    """The PostgreSQL server the tests use."""
    return os.environ.get("JOURNAL_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


_postgres_problem: list[str | None] = []


def _probe_postgres() -> str | None:
    """None if PostgreSQL answers, else why not (probed once per session)."""
    if not _postgres_problem:
        import psycopg

        try:
            with psycopg.connect(postgres_url(), connect_timeout=5) as conn:
                conn.execute("SELECT 1")
            _postgres_problem.append(None)
        except psycopg.Error as e:
            _postgres_problem.append(f"{type(e).__name__}: {' '.join(str(e).split())}")
    return _postgres_problem[0]


def require_postgres() -> str:
    """Return the server's URL, or skip (locally) / fail (CI=true) without it."""
    problem = _probe_postgres()
    if problem is not None:
        message = (
            f"PostgreSQL at {postgres_url()} is unreachable ({problem}); set "
            "JOURNAL_TEST_POSTGRES_URL or start the server"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    return postgres_url()


def new_tenant() -> str:
    """A tenant no other test (or run) uses."""
    return f"tenant_t{secrets.token_hex(8)}"


def backend_url(backend: str, tmp_path: Path) -> str:
    """A store URL for `backend`, fresh for this test."""
    if backend == "memory":
        # Named, so that a second open of the URL sees the same store.
        return f"memory://t{secrets.token_hex(8)}"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.db'}"
    return require_postgres()


def _backend_params(*names: str) -> list[object]:
    return [
        pytest.param(name, marks=pytest.mark.postgres) if name == "postgres" else name
        for name in names
    ]


@pytest.fixture(params=_backend_params(*BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    """Each backend in turn: memory, sqlite, postgres."""
    return str(request.param)


@pytest.fixture(params=_backend_params("sqlite", "postgres"))
def sql_backend(request: pytest.FixtureRequest) -> str:
    """The SQL backends only: sqlite, postgres."""
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> str:
    """A URL of a fresh store (PostgreSQL: the shared test database)."""
    return backend_url(backend, tmp_path)


@pytest.fixture
def tenant() -> str:
    """This test's own tenant."""
    return new_tenant()


OpenStore = Callable[..., Store]
OpenJournal = Callable[..., journal.Journal]


@pytest.fixture
def open_store_at(store_url: str) -> Iterator[OpenStore]:
    """Open (more) stores on this test's URL; all are closed afterwards."""
    opened: list[Store] = []

    def open_(hasher: Hasher | None = None) -> Store:
        store = open_store(store_url, hasher=hasher)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def open_journal(open_store_at: OpenStore, tenant: str) -> OpenJournal:
    """Open a journal on this test's store: own connection, any tenant."""

    def open_(
        tenant_id: str | None = None,
        *,
        hasher: Hasher | None = None,
        snapshot_every: int = SNAPSHOT_EVERY,
    ) -> journal.Journal:
        return journal.Journal(
            open_store_at(hasher),
            tenant_id or tenant,
            snapshot_every=snapshot_every,
        )

    return open_


@pytest.fixture
def journal_(open_journal: OpenJournal) -> journal.Journal:
    """A journal on this test's store, in this test's tenant."""
    return open_journal()
