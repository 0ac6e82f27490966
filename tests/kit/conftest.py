"""Fixtures for the Windmill kit tests: Node tools and throwaway PostgreSQL / MariaDB databases."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .kitlib import KIT, PG_TABLES, run_kit_tool


@pytest.fixture(scope="session")
def kit_tool() -> Callable[[dict[str, Any]], Any]:
    return run_kit_tool


# --- PostgreSQL: one throwaway database per session, emptied before each test ---------------------


@pytest.fixture(scope="session")
def pg_database() -> Iterator[dict[str, Any]]:
    psycopg = pytest.importorskip("psycopg")
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5"
    name = f"headrace_kit_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    resource = {
        "host": "127.0.0.1",
        "port": 5432,
        "user": "postgres",
        "dbname": name,
        "sslmode": "disable",
        "password": "",
    }
    try:
        with psycopg.connect(dbname=name, host="127.0.0.1", user="postgres") as conn:
            conn.execute((KIT / "sql" / "postgresql.sql").read_text())
            conn.execute((KIT / "sql" / "postgresql.sql").read_text())  # applying twice is harmless
        yield resource
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg(pg_database: dict[str, Any]) -> Iterator[dict[str, Any]]:
    import psycopg

    with psycopg.connect(dbname=pg_database["dbname"], host="127.0.0.1", user="postgres") as conn:
        conn.execute(f"TRUNCATE {', '.join(PG_TABLES)}")
    yield pg_database


@pytest.fixture
def pg_query(pg: dict[str, Any]) -> Callable[..., list[tuple[Any, ...]]]:
    import psycopg

    def query(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(dbname=pg["dbname"], host="127.0.0.1", user="postgres") as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    return query


# --- MariaDB / MySQL ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mysql_database() -> Iterator[dict[str, Any]]:
    pymysql = pytest.importorskip("pymysql")
    name = f"headrace_kit_{uuid.uuid4().hex[:12]}"
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
            cur.execute(f"USE `{name}`")
            cur.execute((KIT / "sql" / "mysql.sql").read_text())
        yield {"host": "127.0.0.1", "port": 3306, "user": "root", "database": name, "password": ""}
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture
def mysql_db(mysql_database: dict[str, Any]) -> dict[str, Any]:
    import pymysql

    conn = pymysql.connect(**{**mysql_database, "port": 3306}, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM dodo_customers")
    conn.close()
    return mysql_database
