-- The statements of the PostgreSQL migration runner (SQLite keeps its version in PRAGMA user_version).
-- Every instance runs them at start-up; the advisory lock makes instances that start together take turns.

-- name: lock
SELECT pg_advisory_xact_lock(4849373218734622021);

-- name: create_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER     PRIMARY KEY,
    name       TEXT        NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- name: has_table
SELECT to_regclass('schema_migrations') IS NOT NULL AS present;

-- name: applied
SELECT version FROM schema_migrations ORDER BY version;

-- name: record
INSERT INTO schema_migrations (version, name) VALUES (%(version)s, %(name)s);
