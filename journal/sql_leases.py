"""Leases in the SQL backends: the ``journal_leases`` table (see
`journal.leases`; operational data outside the hash chain).

Every change runs in one write transaction with the lease row locked
(SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT … FOR UPDATE``), so two
recoverers racing for one dead execution cannot both win: the second sees
the first one's fresh heartbeat.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from journal.leases import Lease, LeaseStore, check_fence, now_ms, plan_acquire

LEASES_DDL = (
    "CREATE TABLE IF NOT EXISTS journal_leases ("
    "execution_id TEXT PRIMARY KEY, "
    "tenant_id TEXT NOT NULL, "
    "owner TEXT, "
    "token BIGINT NOT NULL, "
    "heartbeat_ms BIGINT NOT NULL, "
    "ttl_ms BIGINT NOT NULL DEFAULT 0)"
)
_COLUMNS = "execution_id, tenant_id, owner, token, heartbeat_ms, ttl_ms"


class SQLLeases(LeaseStore):
    """The lease methods of `journal.sqlstore.SQLStore`."""

    LOCK_ROW: str

    def _transaction(self, write: bool) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _q(self, sql: str) -> str:
        raise NotImplementedError

    def _lease_row(self, cur: Any, execution_id: str, *, lock: bool) -> Lease | None:
        cur.execute(
            self._q(f"SELECT {_COLUMNS} FROM journal_leases WHERE execution_id = ?")
            + (self.LOCK_ROW if lock else ""),
            (execution_id,),
        )
        found = cur.fetchone()
        return None if found is None else Lease(*found)

    def _check_fence(self, cur: Any, lease: Lease | None) -> None:
        """Inside an append: refuse it unless `lease` is still current."""
        if lease is not None:
            check_fence(lease, self._lease_row(cur, lease.execution_id, lock=True))

    def acquire_lease(
        self,
        execution_id: str,
        tenant_id: str,
        owner: str,
        stale_after_ms: int,
        ttl_ms: int = 0,
    ) -> Lease | None:
        with self._transaction(write=True) as cur:
            found = self._lease_row(cur, execution_id, lock=True)
            new = plan_acquire(
                found, execution_id, tenant_id, owner, stale_after_ms, now_ms(), ttl_ms
            )
            if new is None:
                return None
            if found is None:
                cur.execute(
                    self._q(
                        f"INSERT INTO journal_leases ({_COLUMNS}) VALUES "
                        "(?, ?, ?, ?, ?, ?) ON CONFLICT (execution_id) DO NOTHING"
                    ),
                    (execution_id, tenant_id, owner, 1, new.heartbeat_ms, ttl_ms),
                )
            else:
                cur.execute(
                    self._q(
                        "UPDATE journal_leases SET owner = ?, token = ?, "
                        "heartbeat_ms = ?, ttl_ms = ? "
                        "WHERE execution_id = ? AND token = ?"
                    ),
                    (
                        owner,
                        new.token,
                        new.heartbeat_ms,
                        ttl_ms,
                        execution_id,
                        found.token,
                    ),
                )
            # Another process inserted the row first (only possible for a new
            # row on PostgreSQL, where there was nothing to lock): it won.
            return new if cur.rowcount == 1 else None

    def renew_lease(self, lease: Lease) -> bool:
        return self._update_lease(
            "UPDATE journal_leases SET heartbeat_ms = ? "
            "WHERE execution_id = ? AND token = ? AND owner = ?",
            (now_ms(), lease.execution_id, lease.token, lease.owner),
        )

    def release_lease(self, lease: Lease) -> None:
        self._update_lease(
            "UPDATE journal_leases SET owner = NULL "
            "WHERE execution_id = ? AND token = ? AND owner = ?",
            (lease.execution_id, lease.token, lease.owner),
        )

    def _update_lease(self, sql: str, params: tuple[Any, ...]) -> bool:
        with self._transaction(write=True) as cur:
            cur.execute(self._q(sql), params)
            return bool(cur.rowcount == 1)

    def get_lease(self, execution_id: str, tenant_id: str) -> Lease | None:
        with self._transaction(write=False) as cur:
            found = self._lease_row(cur, execution_id, lock=False)
        return found if found is not None and found.tenant_id == tenant_id else None
