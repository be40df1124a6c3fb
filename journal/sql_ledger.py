"""The ledger's tables in the SQL backends (see `journal.ledger`).

* ``journal_ledger``: settings (the origin), name/value;
* ``journal_ledger_leaves``: every leaf, per tenant, by index;
* ``journal_ledger_heads``: the last sealed head of each execution;
* ``journal_ledger_checkpoints``: every signed checkpoint, per tenant.

A seal round writes its leaves, the heads they seal, its checkpoints and the
sealer's tracking record (`journal.sql_log`) in one transaction: a sealer
killed at any moment leaves either the whole round or nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from journal.errors import ConflictError, StoreError
from journal.ledger import LedgerHead, ledger_problems, store_problems


def ledger_ddl(blob: str) -> tuple[str, ...]:
    """The ledger's tables; `blob` is the dialect's bytes type."""
    return (
        "CREATE TABLE IF NOT EXISTS journal_ledger ("
        "name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS journal_ledger_leaves ("
        "tenant_id TEXT NOT NULL, leaf_index BIGINT NOT NULL, "
        f"execution_id TEXT NOT NULL, leaf {blob} NOT NULL, "
        "PRIMARY KEY (tenant_id, leaf_index))",
        "CREATE TABLE IF NOT EXISTS journal_ledger_heads ("
        "execution_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, "
        f"head_seq BIGINT NOT NULL, head_link {blob} NOT NULL, "
        "leaf_index BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS journal_ledger_checkpoints ("
        "tenant_id TEXT NOT NULL, tree_size BIGINT NOT NULL, "
        f"root {blob} NOT NULL, note TEXT NOT NULL, "
        "PRIMARY KEY (tenant_id, tree_size))",
    )


class SQLLedger:
    """The ledger methods of `journal.sqlstore.SQLStore`."""

    BLOB = "BLOB"

    def _transaction(self, write: bool) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _q(self, sql: str) -> str:
        raise NotImplementedError

    def _insert_tracking(
        self, cur: Any, application_name: str, notification_id: int
    ) -> None:
        raise NotImplementedError

    def init_ledger(self, origin: str) -> str:
        """Create the ledger's tables and name it; return the origin it has.

        Raises:
            ConflictError: the ledger already has another origin.
        """
        with self._transaction(write=True) as cur:
            for statement in ledger_ddl(self.BLOB):
                cur.execute(statement)
            cur.execute(
                self._q(
                    "INSERT INTO journal_ledger (name, value) VALUES ('origin', ?) "
                    "ON CONFLICT (name) DO NOTHING"
                ),
                (origin,),
            )
            cur.execute("SELECT value FROM journal_ledger WHERE name = 'origin'")
            found = str(cur.fetchone()[0])
        if found != origin:
            raise ConflictError(f"the ledger is already named {found!r}")
        return found

    def ledger_origin(self) -> str:
        """The ledger's origin.

        Raises:
            StoreError: no ledger was initialised (``journal ledger init``).
        """
        try:
            with self._transaction(write=False) as cur:
                cur.execute("SELECT value FROM journal_ledger WHERE name = 'origin'")
                found = cur.fetchone()
        except StoreError as exc:
            raise StoreError(
                "this store has no ledger: run `journal ledger init --origin NAME`"
            ) from exc
        if found is None:
            raise StoreError("the ledger has no origin: run `journal ledger init`")
        return str(found[0])

    def sealed_heads(
        self, tenant_id: str | None = None, execution_ids: Sequence[str] = ()
    ) -> dict[str, LedgerHead]:
        """The last sealed head of each execution (of a tenant, or these)."""
        sql = (
            "SELECT tenant_id, execution_id, head_seq, head_link, leaf_index "
            "FROM journal_ledger_heads"
        )
        params: list[Any] = []
        if tenant_id is not None:
            sql += " WHERE tenant_id = ?"
            params.append(tenant_id)
        with self._transaction(write=False) as cur:
            cur.execute(self._q(sql), params)
            rows = cur.fetchall()
        heads = {
            row[1]: LedgerHead(row[0], row[1], int(row[2]), bytes(row[3]), int(row[4]))
            for row in rows
        }
        if execution_ids:
            return {e: heads[e] for e in execution_ids if e in heads}
        return heads

    def ledger_leaves(self, tenant_id: str) -> list[bytes]:
        """A tenant's leaves in order."""
        with self._transaction(write=False) as cur:
            cur.execute(
                self._q(
                    "SELECT leaf FROM journal_ledger_leaves WHERE tenant_id = ? "
                    "ORDER BY leaf_index"
                ),
                (tenant_id,),
            )
            return [bytes(row[0]) for row in cur.fetchall()]

    def ledger_checkpoints(self, tenant_id: str) -> list[tuple[int, bytes, str]]:
        """A tenant's checkpoints, oldest first: (size, root, signed note)."""
        with self._transaction(write=False) as cur:
            cur.execute(
                self._q(
                    "SELECT tree_size, root, note FROM journal_ledger_checkpoints "
                    "WHERE tenant_id = ? ORDER BY tree_size"
                ),
                (tenant_id,),
            )
            return [(int(s), bytes(r), str(n)) for s, r, n in cur.fetchall()]

    def latest_tree_head(self, tenant_id: str) -> tuple[int, bytes] | None:
        """A tenant's latest checkpointed tree (size, root), or None."""
        with self._transaction(write=False) as cur:
            cur.execute(
                self._q(
                    "SELECT tree_size, root FROM journal_ledger_checkpoints "
                    "WHERE tenant_id = ? ORDER BY tree_size DESC LIMIT 1"
                ),
                (tenant_id,),
            )
            found = cur.fetchone()
        return None if found is None else (int(found[0]), bytes(found[1]))

    def latest_checkpoint_note(self) -> str | None:
        """The signed note of the ledger's latest checkpoint (any tenant's
        largest tree), or None before the first seal."""
        with self._transaction(write=False) as cur:
            cur.execute(
                "SELECT note FROM journal_ledger_checkpoints "
                "ORDER BY tree_size DESC LIMIT 1"
            )
            found = cur.fetchone()
        return None if found is None else str(found[0])

    def has_ledger(self) -> bool:
        """Whether `journal ledger init` was run on this store."""
        try:
            self.ledger_origin()
        except StoreError:
            return False
        return True

    def ledger_audit(self, tenant_id: str) -> list[tuple[str, str]]:
        """(execution id or "ledger", problem) for every sealed head the
        store no longer holds and every checkpoint the leaves do not give."""
        if not self.has_ledger():
            return []
        sealed = self.sealed_heads(tenant_id)

        def lookup(execution_id: str, seq: int) -> tuple[int, bytes | None] | None:
            summary = self.get_summary(execution_id, tenant_id)  # type: ignore[attr-defined]
            if summary is None:
                return None
            rows = self.load_rows(execution_id, tenant_id, seq - 1, seq)  # type: ignore[attr-defined]
            return int(summary.head_seq), rows[0].hash if rows else None

        problems = store_problems(sealed, lookup)
        checkpoints = self.ledger_checkpoints(tenant_id)
        leaves = self.ledger_leaves(tenant_id)
        problems += [("ledger", p) for p in ledger_problems(leaves, checkpoints)]
        return problems

    def ledger_proof(self, tenant_id: str, execution_id: str) -> bytes:
        """The ``proofs`` JSON of an execution's sealed head against the
        tenant's latest checkpoint (`journal.proofs`).

        Raises:
            StoreError: the execution is not sealed yet.
        """
        from journal.proofs import make_proof

        head = self.sealed_heads(tenant_id, [execution_id]).get(execution_id)
        checkpoints = self.ledger_checkpoints(tenant_id)
        if head is None or not checkpoints:
            raise StoreError(f"{execution_id} is not sealed yet: run `journal seal`")
        size, _, note = checkpoints[-1]
        return make_proof(self.ledger_leaves(tenant_id), head.leaf_index, size, note)

    def ledger_tenants(self) -> list[str]:
        """Tenants that have a ledger."""
        with self._transaction(write=False) as cur:
            cur.execute("SELECT DISTINCT tenant_id FROM journal_ledger_checkpoints")
            return sorted(str(row[0]) for row in cur.fetchall())

    def seal_round(
        self,
        leaves: Sequence[tuple[LedgerHead, bytes, LedgerHead | None]],
        checkpoints: Sequence[tuple[str, int, bytes, str]],
        tracking: tuple[str, int],
    ) -> None:
        """Write one round: leaves (each with the head it seals and the
        sealed head it extends), checkpoints and the sealer's tracking.

        Raises:
            ConflictError: another sealer moved a head or the tracking first
                (nothing is written).
        """
        with self._transaction(write=True) as cur:
            for head, leaf, before in leaves:
                self._check_sealed(cur, head.execution_id, before)
                cur.execute(
                    self._q(
                        "INSERT INTO journal_ledger_leaves (tenant_id, leaf_index, "
                        "execution_id, leaf) VALUES (?, ?, ?, ?)"
                    ),
                    (head.tenant_id, head.leaf_index, head.execution_id, leaf),
                )
                self._put_head(cur, head)
            cur.executemany(
                self._q(
                    "INSERT INTO journal_ledger_checkpoints "
                    "(tenant_id, tree_size, root, note) VALUES (?, ?, ?, ?)"
                ),
                list(checkpoints),
            )
            self._insert_tracking(cur, *tracking)

    def _check_sealed(
        self, cur: Any, execution_id: str, before: LedgerHead | None
    ) -> None:
        cur.execute(
            self._q("SELECT head_seq FROM journal_ledger_heads WHERE execution_id = ?"),
            (execution_id,),
        )
        found = cur.fetchone()
        now = None if found is None else int(found[0])
        if now != (None if before is None else before.head_seq):
            raise ConflictError(f"{execution_id}: another sealer sealed it first")

    def _put_head(self, cur: Any, head: LedgerHead) -> None:
        cur.execute(
            self._q(
                "INSERT INTO journal_ledger_heads "
                "(execution_id, tenant_id, head_seq, head_link, leaf_index) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (execution_id) DO UPDATE SET "
                "head_seq = excluded.head_seq, head_link = excluded.head_link, "
                "leaf_index = excluded.leaf_index"
            ),
            (
                head.execution_id,
                head.tenant_id,
                head.head_seq,
                head.head_link,
                head.leaf_index,
            ),
        )
