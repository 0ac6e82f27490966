-- Tables used by the MySQL/MariaDB scripts of the headrace Windmill kit (MySQL 8, MariaDB 10.5+).
-- Apply once: mysql your_db < kit/sql/mysql.sql   (idempotent)
-- Only f/dodo/upsert_customer_mysql has a MySQL variant; the ledger, subscription, inventory and
-- metrics scripts use PostgreSQL (kit/sql/postgresql.sql). Times are stored as UTC DATETIME(6).

-- One row per Dodo customer; an older event never overwrites newer contact details.
CREATE TABLE IF NOT EXISTS dodo_customers (
    customer_id    VARCHAR(64) NOT NULL PRIMARY KEY,
    email          VARCHAR(320) NULL,
    name           VARCHAR(255) NULL,
    phone_number   VARCHAR(64) NULL,
    first_seen_at  DATETIME(6) NOT NULL,
    last_seen_at   DATETIME(6) NOT NULL,
    updated_at     DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
