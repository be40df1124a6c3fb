"""``journal seal --follow`` outlives the server going away.

The sealer reaches PostgreSQL through `tests.pg_proxy`, which plays the
server going away (every connection cut, new ones refused) for longer than
the store's retries last. The runner stops on that failure; ``seal
--follow`` must start a new one that resumes from the sealer's tracking
record, say so on stderr, and seal what was appended meanwhile, each head
once.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import journal
from journal.ledger import KEY_FILE_ENV
from tests.conftest import new_tenant, own_postgres_url, require_postgres
from tests.followers import TIMEOUT, Follower
from tests.ledger_checks import check_sealed, ledger_store, wait_until_sealed
from tests.pg_proxy import FaultProxy
from tests.test_pg_faults import through, with_params

pytestmark = pytest.mark.postgres


def record(url: str, tenant: str) -> str:
    with journal.open(url, tenant=tenant) as j:
        handle = j.create(flow="seal.restart")
        handle.start()
        step = handle.start_step("fetch", "Tool", input={"i": 1})
        handle.complete_step(step, {"ok": 1})
        return str(handle.id)


def test_seal_follow_resumes_after_the_server_was_away(tmp_path: Path) -> None:
    parts = urlsplit(require_postgres())
    proxy = FaultProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    direct = own_postgres_url()
    # Few, short retries and pool waits: the outage outlasts them.
    url = with_params(
        through(proxy, direct), retry_attempts=2, pool_timeout_s=1, retry_delay_ms=20
    )
    store, signer, key_file = ledger_store(direct, tmp_path, "ledger.restart")
    tenant = new_tenant()
    ids = [record(direct, tenant)]
    sealer = Follower("seal", "--follow", "--db", url, **{KEY_FILE_ENV: str(key_file)})

    try:
        wait_until_sealed(store, tenant, ids, sealer.process, TIMEOUT)
        proxy.pause()  # the server goes away, longer than the retries last
        ids.append(record(direct, tenant))
        time.sleep(3)
        assert sealer.process.poll() is None, sealer.stderr()
        proxy.resume()
        ids.append(record(direct, tenant))
        wait_until_sealed(store, tenant, ids, sealer.process, TIMEOUT)
        assert sealer.interrupt() == 130
        stderr = sealer.stderr()
    finally:
        sealer.kill()
        proxy.close()
    assert "resuming from the sealer's tracking record" in stderr
    check_sealed(store, tenant, ids, signer)
    store.close()
