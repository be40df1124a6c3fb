"""Shared fixtures: one parametrised store per backend, tenants per test.

PostgreSQL is the real server at ``JOURNAL_TEST_POSTGRES_URL`` (never a
mock). When it is unreachable its tests are skipped locally, but with
``CI=true`` they fail: CI must run every backend. Each test session works in
a fresh PostgreSQL schema of its own (``search_path`` set through the URL's
``options``, so subprocesses given the URL land there too), dropped when the
session ends: concurrent runs never meet, and no test cleans up by DELETE.
Within a session, tests still use tenants of their own.
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
from journal.keys import Keyring
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


def server_url() -> str:
    """The PostgreSQL server the tests use (its default schema)."""
    return os.environ.get("JOURNAL_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


#: This session's own schema on the server, created on first use.
SESSION_SCHEMA = f"jt_{secrets.token_hex(6)}"


def in_schema(url: str, schema: str) -> str:
    """`url` with libpq's ``options`` setting ``search_path`` to `schema`."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


def postgres_url() -> str:
    """A URL of this session's fresh schema on the test server."""
    return in_schema(server_url(), SESSION_SCHEMA)


_postgres_problem: list[str | None] = []


def _probe_postgres() -> str | None:
    """None if PostgreSQL answers, else why not (probed once per session).
    The first successful probe creates this session's schema."""
    if not _postgres_problem:
        import psycopg

        try:
            with psycopg.connect(server_url(), connect_timeout=5) as conn:
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SESSION_SCHEMA}")
            _postgres_problem.append(None)
        except psycopg.Error as e:
            _postgres_problem.append(f"{type(e).__name__}: {' '.join(str(e).split())}")
    return _postgres_problem[0]


#: Further schemas of this session (stores a test must have to itself).
_own_schemas: list[str] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop this session's schemas, if they were created."""
    if _postgres_problem == [None]:
        import psycopg

        with psycopg.connect(server_url(), connect_timeout=5) as conn:
            for schema in [SESSION_SCHEMA, *_own_schemas]:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def own_postgres_url() -> str:
    """A URL of a new schema for one test (e.g. a store holding signed
    chains, into which other tests could not write unsigned), dropped when
    the session ends."""
    require_postgres()
    import psycopg

    schema = f"{SESSION_SCHEMA}_{secrets.token_hex(4)}"
    with psycopg.connect(server_url(), connect_timeout=5) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    _own_schemas.append(schema)
    return in_schema(server_url(), schema)


def isolated_url(backend: str, tmp_path: Path) -> str:
    """Like `backend_url`, but a PostgreSQL store of this test's own."""
    return (
        own_postgres_url() if backend == "postgres" else backend_url(backend, tmp_path)
    )


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
    """A URL of a fresh store (PostgreSQL: this session's schema)."""
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

    def open_(keyring: Keyring | None = None) -> Store:
        store = open_store(store_url, keyring=keyring)
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
        keyring: Keyring | None = None,
        snapshot_every: int = SNAPSHOT_EVERY,
    ) -> journal.Journal:
        return journal.Journal(
            open_store_at(keyring),
            tenant_id or tenant,
            snapshot_every=snapshot_every,
        )

    return open_


@pytest.fixture
def journal_(open_journal: OpenJournal) -> journal.Journal:
    """A journal on this test's store, in this test's tenant."""
    return open_journal()
