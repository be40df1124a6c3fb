"""PostgreSQL under faults: dropped connections, a COMMIT whose answer is
lost, lock and statement timeouts, and the pool's URL settings.

All against the real server (never a mock): a backend is ended with
``pg_terminate_backend``, and a fault-injecting TCP proxy on 127.0.0.1
(`tests.pg_proxy`) cuts a connection around its COMMIT.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest

import journal
from journal import events as ev
from journal.errors import StoreBusyError, StoreError, TransientStoreError
from journal.postgres_pool import split_url
from tests.conftest import new_tenant, require_postgres
from tests.pg_proxy import FaultProxy

pytestmark = pytest.mark.postgres


def with_params(url: str, **params: object) -> str:
    """`url` with more query parameters."""
    extra = "&".join(f"{name}={value}" for name, value in params.items())
    return f"{url}{'&' if '?' in url else '?'}{extra}"


def terminate(application_name: str) -> int:
    """End every server backend of that application; return how many."""
    admin_url = split_url(require_postgres())[0]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            (application_name,),
        ).fetchone()
    assert ended is not None
    return int(ended[0])


def stored_steps(url: str, tenant: str, execution_id: str) -> list[str]:
    """Names of the steps stored, one per StepStarted event, chain verified."""
    with journal.open(url, tenant=tenant) as journal_:
        history = journal_.history(execution_id)
    return [e.name or "" for e in history.events if isinstance(e, ev.StepStarted)]


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    parts = urlsplit(require_postgres())
    fault_proxy = FaultProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    yield fault_proxy
    fault_proxy.close()


def through(proxy: FaultProxy, url: str) -> str:
    """`url` pointed at the proxy, in a form the proxy can read."""
    parts = urlsplit(url)
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}"
    moved = url.replace(parts.netloc, netloc, 1)
    return with_params(moved, sslmode="disable", gssencmode="disable")


@pytest.mark.parametrize(
    "check",
    [
        {"health_check": 1, "health_check_idle_s": 0},  # every checkout
        {"health_check": 1},  # only a connection idle for a while
        {"health_check": 0},  # the retries alone
    ],
)
def test_a_writer_whose_backend_is_terminated_carries_on_after_reconnecting(
    check: dict[str, int],
) -> None:
    name = f"jt_writer_{secrets.token_hex(4)}"
    url = with_params(require_postgres(), application_name=name, **check)
    tenant = new_tenant()
    with journal.open(url, tenant=tenant) as journal_:
        handle = journal_.create(flow="terminated")
        handle.start()
        handle.start_step("before", "ToolNode")
        assert terminate(name) >= 1
        # Every later operation succeeds on a new connection.
        after = handle.start_step("after", "ToolNode")
        handle.complete_step(after, {"ok": True})
        assert journal_.get(handle.id).version == handle.state.version
        assert terminate(name) >= 1
        assert [s.execution_id for s in journal_.list()] == [handle.id]
    assert stored_steps(require_postgres(), tenant, handle.id) == ["before", "after"]


@pytest.mark.parametrize("ends", ["COMMIT", "journal_append"])
@pytest.mark.parametrize("when", ["after", "before"])
def test_a_commit_cut_by_the_proxy_is_resolved_against_the_stored_head(
    proxy: FaultProxy, when: str, ends: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Either way an append ends: a transaction's COMMIT (a writer that has
    not seen the head: here a second journal), or the one-call append of a
    writer that knows it (`journal.postgres_append`)."""
    tenant = new_tenant()
    url = through(proxy, require_postgres())
    with journal.open(url, tenant=tenant) as first:
        handle = first.create(flow="cut")
        handle.start()
        if ends == "COMMIT":
            second = journal.open(url, tenant=tenant)
            handle = second.handle(handle.id)
        proxy.cut_next_commit(when)
        with caplog.at_level(logging.INFO, logger="journal.retry"):
            handle.start_step("cut", "ToolNode")  # resolved: stored, or retried
        handle.start_step("next", "ToolNode")
        version = handle.state.version
        if ends == "COMMIT":
            second.close()
    assert proxy.cuts == [f"{when} {ends}"]
    resolved = "was committed" if when == "after" else "connection lost while"
    assert resolved in caplog.text
    # Never written twice, never lost; the handle agrees with the store.
    assert stored_steps(require_postgres(), tenant, handle.id) == ["cut", "next"]
    with journal.open(require_postgres(), tenant=tenant) as journal_:
        assert journal_.verify(handle.id)[0] == version


def test_a_lock_held_longer_than_lock_timeout_is_reported_as_busy() -> None:
    tenant = new_tenant()
    url = with_params(require_postgres(), lock_timeout_ms=200, retry_attempts=1)
    with journal.open(url, tenant=tenant) as journal_:
        handle = journal_.create(flow="locked")
        with psycopg.connect(split_url(url)[0]) as holder:
            holder.execute(
                "SELECT 1 FROM journal_executions WHERE execution_id = %s FOR UPDATE",
                (handle.id,),
            )
            with pytest.raises(StoreBusyError, match="waited more than 200 ms"):
                handle.start()
        assert handle.state.state.value == "Created"  # as the store has it
        handle.start()  # the lock is gone: it goes through
    assert StoreBusyError.exit_code == 12


def test_a_statement_running_past_statement_timeout_is_reported_as_busy() -> None:
    tenant = new_tenant()
    url = with_params(
        require_postgres(), statement_timeout_ms=200, lock_timeout_ms=60_000
    )
    with journal.open(url, tenant=tenant) as journal_:
        handle = journal_.create(flow="slow")
        with psycopg.connect(split_url(url)[0]) as holder:
            holder.execute(
                "SELECT 1 FROM journal_executions WHERE execution_id = %s FOR UPDATE",
                (handle.id,),
            )
            with pytest.raises(StoreBusyError, match="statement_timeout_ms"):
                handle.start()


def test_journal_settings_are_stripped_from_the_url_and_the_rest_kept_verbatim() -> (
    None
):
    url = (
        "postgresql://u@h:5/db?options=-csearch_path%3Djt_x&pool_max_size=9"
        "&lock_timeout_ms=250&sslmode=disable&retry_attempts=2"
    )
    libpq_url, settings = split_url(url, environ={"JOURNAL_PG_POOL_MIN_SIZE": "2"})
    assert (
        libpq_url
        == "postgresql://u@h:5/db?options=-csearch_path%3Djt_x&sslmode=disable"
    )
    assert (settings["pool_max_size"], settings["pool_min_size"]) == (9, 2)
    assert settings.lock_timeout_ms == 250
    assert settings.retry.attempts == 2


def test_a_url_parameter_wins_over_the_environment() -> None:
    _, settings = split_url(
        "postgresql://h/db?pool_timeout_s=3",
        environ={"JOURNAL_PG_POOL_TIMEOUT_S": "7", "JOURNAL_RETRY_ATTEMPTS": "4"},
    )
    assert settings["pool_timeout_s"] == 3
    assert settings.retry.attempts == 4


@pytest.mark.parametrize(
    ("query", "named"),
    [("pool_max_size=many", "pool_max_size"), ("retry_attempts=-1", "retry_attempts")],
)
def test_a_bad_pool_setting_is_refused_naming_it(query: str, named: str) -> None:
    with pytest.raises(StoreError, match=f"bad journal setting {named}="):
        split_url(f"postgresql://h/db?{query}", environ={})


def test_an_unreachable_server_is_reported_with_the_servers_reason() -> None:
    url = "postgresql://postgres@127.0.0.1:1/test?pool_timeout_s=1&connect_timeout=1"
    with pytest.raises(
        StoreError, match=r"cannot reach PostgreSQL at .*127\.0\.0\.1:1"
    ):
        journal.open(url)


def test_an_append_that_fails_leaves_the_handle_as_the_store_has_it() -> None:
    name = f"jt_writer_{secrets.token_hex(4)}"
    url = with_params(
        require_postgres(),
        application_name=name,
        health_check=0,
        retry_attempts=1,
        pool_max_size=1,
    )
    with journal.open(url, tenant=new_tenant()) as journal_:
        handle = journal_.create(flow="failed")
        handle.start()
        before = journal_.get(handle.id)
        assert terminate(name) == 1
        with pytest.raises(TransientStoreError, match="connection lost"):
            handle.start_step("refused", "ToolNode")
        assert handle.state == before
        handle.start_step("accepted", "ToolNode")  # no InvalidTransitionError
        assert [s.name for s in journal_.get(handle.id).steps.values()] == ["accepted"]
