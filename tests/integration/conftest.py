"""PostgreSQL for the store tests: one throwaway database per session, one fresh schema per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The name of a database created for this test session and dropped at its end."""
    psycopg = pytest.importorskip("psycopg")
    name = f"headrace_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server on 127.0.0.1:5432 ({exc})")
    try:
        yield name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_dsn(pg_database: str) -> str:
    """A postgresql:// URL whose search_path is a new, empty schema: each test starts from nothing."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=pg_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    options = quote(f"-csearch_path={schema}")
    return f"postgresql://postgres@127.0.0.1:5432/{pg_database}?options={options}"
