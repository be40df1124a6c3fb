"""The PostgreSQL tables, triggers and functions of a journal store.

`POSTGRES_SCHEMA` is the first-round layout; `POSTGRES_V2` is what ``journal
init`` adds to a new store and ``journal migrate`` to a first-round one: the
chain-v2 columns, the append-only triggers, the store-wide log's tables
(`journal.sql_log`) and the one-call append (`journal.postgres_append`).
"""

from __future__ import annotations

from journal.postgres_append import APPEND_FUNCTION_DDL
from journal.sql_leases import LEASES_DDL
from journal.sql_log import log_ddl

LOG_DDL = log_ddl("BIGINT")
POSTGRES_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS journal_executions (
    exec_key BIGSERIAL PRIMARY KEY,
    execution_id TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    state TEXT NOT NULL,
    flow TEXT,
    parent_id TEXT,
    schema_version TEXT,
    created_at TIMESTAMPTZ,
    started_at TIMESTAMPTZ,
    ended_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ,
    step_count INTEGER NOT NULL DEFAULT 0,
    failed_steps INTEGER NOT NULL DEFAULT 0,
    output BYTEA,
    error BYTEA,
    alg TEXT NOT NULL,
    head_seq BIGINT NOT NULL,
    head_hash BYTEA NOT NULL,
    genesis BYTEA,
    key_id TEXT,
    head_mac BYTEA)""",
    "CREATE INDEX IF NOT EXISTS journal_executions_by_time "
    "ON journal_executions (tenant_id, created_at)",
    "CREATE INDEX IF NOT EXISTS journal_executions_by_state "
    "ON journal_executions (tenant_id, state, created_at)",
    "CREATE INDEX IF NOT EXISTS journal_executions_by_flow "
    "ON journal_executions (tenant_id, flow, created_at)",
    """CREATE TABLE IF NOT EXISTS journal_events (
    exec_key BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    topic TEXT,
    payload BYTEA NOT NULL,
    hash BYTEA NOT NULL,
    PRIMARY KEY (exec_key, seq))""",
    """CREATE TABLE IF NOT EXISTS journal_snapshots (
    exec_key BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    state BYTEA NOT NULL,
    PRIMARY KEY (exec_key, seq))""",
    """CREATE TABLE IF NOT EXISTS journal_schemas (
    schema_hash TEXT PRIMARY KEY,
    document BYTEA NOT NULL)""",
    LEASES_DDL,
]
# What `journal migrate` adds to a first-round store, and `init` to a new one.
POSTGRES_V2 = [
    "ALTER TABLE journal_executions ADD COLUMN IF NOT EXISTS genesis BYTEA",
    "ALTER TABLE journal_executions ADD COLUMN IF NOT EXISTS key_id TEXT",
    "ALTER TABLE journal_executions ADD COLUMN IF NOT EXISTS head_mac BYTEA",
    LEASES_DDL,  # operational (recovery), outside the chain
    """CREATE TABLE IF NOT EXISTS journal_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL)""",
    """CREATE OR REPLACE FUNCTION journal_refuse() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END $$""",
    """CREATE OR REPLACE FUNCTION journal_index_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.exec_key IS DISTINCT FROM OLD.exec_key
        OR NEW.execution_id IS DISTINCT FROM OLD.execution_id
        OR NEW.tenant_id IS DISTINCT FROM OLD.tenant_id
        OR NEW.flow IS DISTINCT FROM OLD.flow
        OR NEW.parent_id IS DISTINCT FROM OLD.parent_id
        OR NEW.created_at IS DISTINCT FROM OLD.created_at
        OR NEW.alg IS DISTINCT FROM OLD.alg
        OR NEW.genesis IS DISTINCT FROM OLD.genesis
        OR NEW.head_seq <= OLD.head_seq
        OR NOT EXISTS (SELECT 1 FROM journal_events e
                       WHERE e.exec_key = NEW.exec_key AND e.seq = NEW.head_seq
                       AND e.hash = NEW.head_hash) THEN
        RAISE EXCEPTION 'journal_executions: only an append may change an index row';
    END IF;
    RETURN NEW;
END $$""",
    "DROP TRIGGER IF EXISTS journal_events_append_only ON journal_events",
    "CREATE TRIGGER journal_events_append_only BEFORE UPDATE OR DELETE "
    "ON journal_events FOR EACH ROW EXECUTE FUNCTION journal_refuse()",
    "DROP TRIGGER IF EXISTS journal_events_no_truncate ON journal_events",
    "CREATE TRIGGER journal_events_no_truncate BEFORE TRUNCATE "
    "ON journal_events FOR EACH STATEMENT EXECUTE FUNCTION journal_refuse()",
    "DROP TRIGGER IF EXISTS journal_executions_no_delete ON journal_executions",
    "CREATE TRIGGER journal_executions_no_delete BEFORE DELETE "
    "ON journal_executions FOR EACH ROW EXECUTE FUNCTION journal_refuse()",
    "DROP TRIGGER IF EXISTS journal_executions_no_truncate ON journal_executions",
    "CREATE TRIGGER journal_executions_no_truncate BEFORE TRUNCATE "
    "ON journal_executions FOR EACH STATEMENT EXECUTE FUNCTION journal_refuse()",
    "DROP TRIGGER IF EXISTS journal_executions_append_only ON journal_executions",
    "CREATE TRIGGER journal_executions_append_only BEFORE UPDATE "
    "ON journal_executions FOR EACH ROW EXECUTE FUNCTION journal_index_append_only()",
    "INSERT INTO journal_meta (name, value) VALUES ('layout', '2') "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    *LOG_DDL,  # the store-wide log (journal.sql_log)
    APPEND_FUNCTION_DDL,  # one round trip per append (journal.postgres_append)
]
