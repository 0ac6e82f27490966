"""The MySQL/MariaDB customer upsert against the real MariaDB server."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from .kitlib import load_script

pytestmark = pytest.mark.mariadb


def stored(db: dict[str, Any]) -> dict[str, Any]:
    conn = pymysql.connect(**db, cursorclass=pymysql.cursors.DictCursor)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM dodo_customers WHERE customer_id = 'cus_1'")
            row: dict[str, Any] = cur.fetchone()
    finally:
        conn.close()
    return row


def test_customer_upsert_mysql_replays_and_out_of_order(mysql_db: dict[str, Any]) -> None:
    upsert = load_script("upsert_customer_mysql").main
    first = upsert("cus_1", "new@example.com", "Ada", "2025-10-02T10:00:00Z", "+1555", db=mysql_db)
    assert first["inserted"] is True and first["email"] == "new@example.com"
    replay = upsert("cus_1", "new@example.com", "Ada", "2025-10-02T10:00:00Z", "+1555", db=mysql_db)
    assert replay["inserted"] is False
    late = upsert("cus_1", "old@example.com", "Ada Old", "2025-09-01T00:00:00+02:00", db=mysql_db)
    assert (late["email"], late["name"], late["phone_number"]) == ("new@example.com", "Ada", "+1555")
    newer = upsert("cus_1", "newest@example.com", "Ada L.", "2025-10-03T00:00:00Z", db=mysql_db)
    assert (newer["email"], newer["name"], newer["phone_number"]) == ("newest@example.com", "Ada L.", "+1555")
    row = stored(mysql_db)
    assert str(row["first_seen_at"]) == "2025-08-31 22:00:00"  # stored as UTC
    assert str(row["last_seen_at"]) == "2025-10-03 00:00:00"


def test_customer_upsert_mysql_needs_an_id(mysql_db: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="customer_id is required"):
        load_script("upsert_customer_mysql").main("", "a@b.c", "A", "2025-10-02T10:00:00Z", db=mysql_db)
