"""What PostgreSQL ingest stores, in the forms chosen for speed (bench/ingest.py --postgres): the search
terms as tsvector text built by headrace, event bodies compressed with LZ4, and the group commit's bulk
statements with binary parameters. Each must store exactly what the slower form stored."""

from __future__ import annotations

import asyncio
import json

import pytest

from headrace import search
from headrace.dodo.samples import load as load_sample
from headrace.models import NewEvent, Route

psycopg = pytest.importorskip("psycopg")

from headrace.store.postgres import PostgresStore  # noqa: E402

pytestmark = pytest.mark.postgres

# How the terms were made into a tsvector in SQL before (queries.sql, schema version 7): split at spaces,
# each term quoted by the server at its position. headrace's own text must parse to the same tsvector.
SERVER_BUILT = r"""
SELECT COALESCE(string_agg('''' || replace(replace(t, '\', '\\'), '''', '''''') || ''':' || n, ' '), '')::tsvector
FROM regexp_split_to_table(%(terms)s, ' ') WITH ORDINALITY AS u(t, n)
WHERE t <> ''
"""

HOSTILE = [
    "",
    "plain",
    "it's o'brien''s",
    "back\\slash \\' \\\\ end\\",
    "colon:1 star:* a:b:c 'quoted' & | ! <-> ( )",
    "Зоë quill 東京 ✓ 😀 e\u0301",
    "x" * 128 + " " + "y" * 128,
    " ".join(f"t{i % 37}" for i in range(1000)),  # repeated terms: positions merge, as the server merged them
]


@pytest.mark.parametrize(
    "document", [*HOSTILE, search.document("msg_1", json.dumps(load_sample("payment.succeeded")).encode())]
)
def test_headrace_built_tsvector_text_is_the_tsvector_the_server_built(pg_dsn: str, document: str):
    with psycopg.connect(pg_dsn) as conn:
        expected = conn.execute(SERVER_BUILT, {"terms": document}).fetchone()[0]
        got = conn.execute("SELECT %(text)s::tsvector", {"text": search.tsvector(document)}).fetchone()[0]
    assert got == expected


def test_event_bodies_are_compressed_with_lz4_and_read_back_exactly(pg_dsn: str):
    body = json.dumps(
        {**load_sample("payment.succeeded"), "pad": "\u00e9\x00" * 3000}, ensure_ascii=False
    ).encode()  # past 2 KB

    async def main() -> bytes:
        store = PostgresStore(pg_dsn, pool_size=2)
        await store.open()
        try:
            events = [NewEvent("dodo", f"msg_{i}", "payment.succeeded", 1, 1.0, body, {}) for i in range(5)]
            await asyncio.gather(*(store.ingest(e, [Route("a", "u")]) for e in events))  # one group commit
            found = await store.get_event("msg_3")
            assert found is not None
            return found.body
        finally:
            await store.close()

    assert asyncio.run(main()) == body
    with psycopg.connect(pg_dsn) as conn:
        method = conn.execute(
            "SELECT attcompression FROM pg_attribute WHERE attrelid = 'events'::regclass AND attname = 'body'"
        ).fetchone()[0]
        stored = conn.execute("SELECT DISTINCT pg_column_compression(body) FROM events").fetchall()
    assert method == "l" and stored == [("lz4",)]


def test_rows_with_bodies_read_in_binary_are_the_rows_read_as_text(pg_dsn: str):
    """postgres.BINARY_ROWS: the queries whose rows carry event bodies are read in binary; each must give the
    very rows (types and values) it gave as text."""
    from headrace.store.postgres import BINARY_ROWS
    from headrace.store.queries import load

    queries = load("postgresql")
    assert set(BINARY_ROWS) <= set(queries)
    body = json.dumps({**load_sample("payment.succeeded"), "note": "Zoë \u00e9 ✓"}, ensure_ascii=False).encode()

    async def main() -> None:
        store = PostgresStore(pg_dsn, pool_size=2)
        await store.open()
        try:
            events = [
                NewEvent("dodo", f"msg_{i}", "payment.succeeded", 1, 1.5, body, {"webhook-id": f"msg_{i}"}, f"k{i}")
                for i in range(3)
            ] + [NewEvent("dodo", "msg_nokey", "payment.succeeded", 1, 2.5, b"{}", {})]
            await asyncio.gather(*(store.ingest(e, [Route("a", "u")]) for e in events))
            assert await store.claim("a", 2, "token-1", 10.0, 70.0)
        finally:
            await store.close()

    asyncio.run(main())
    params = {
        "events_for_index": {"ids": json.dumps([1, 2, 3, 4])},
        "events_to_index": {"upto": 10, "limit": 10},
        "claimed_by": {"token": "token-1"},
        "get_event": {"event_id": 4},
        "export_events": {"after_id": 0, "limit": 10},
        "keys_pending": {"limit": 10},
    }
    assert set(params) == set(BINARY_ROWS)
    with psycopg.connect(pg_dsn, row_factory=psycopg.rows.dict_row) as conn:
        conn.execute("INSERT INTO event_keys_pending (event_id) VALUES (2), (99)")
        for name, args in params.items():
            text = conn.execute(queries[name], args).fetchall()
            binary = conn.execute(queries[name], args, binary=True).fetchall()
            assert text, name
            assert [{k: (type(v), v) for k, v in r.items()} for r in binary] == [
                {k: (type(v), v) for k, v in r.items()} for r in text
            ], name


def test_the_bulk_index_rows_are_the_rows_one_statement_each_made(pg_dsn: str):
    """bulk.sql's index_event (the indexer's round in one statement) stores what the single form, run once per
    row in order, stored: a row replaced by the later terms, an id given twice keeps its last terms, an event
    gone is skipped."""
    from headrace.store.postgres_group import bulk_params, load_bulk
    from headrace.store.queries import load

    single, bulk = load("postgresql")["index_event"], load_bulk()["index_event"]

    async def main() -> None:
        store = PostgresStore(pg_dsn, pool_size=2)
        await store.open()
        try:
            await asyncio.gather(
                *(store.ingest(NewEvent("dodo", f"msg_{i}", "t", 1, 1.0, b"{}", {}), []) for i in range(3))
            )
        finally:
            await store.close()

    asyncio.run(main())
    rows = [
        {"event_id": 1, "terms": "old:1"},
        {"event_id": 2, "terms": "'it''s':1 b:2"},
        {"event_id": 99, "terms": "gone:1"},
        {"event_id": 1, "terms": "new:1 x:2"},
        {"event_id": 3, "terms": ""},
    ]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        stored = []
        for form in ("single", "bulk"):
            conn.execute("DELETE FROM event_search")
            conn.execute("INSERT INTO event_search (event_id, terms) VALUES (2, 'before:1')")
            if form == "single":
                with conn.cursor() as cur:
                    cur.executemany(single, rows)
            else:
                conn.execute(bulk, bulk_params(bulk, rows))
            stored.append(conn.execute("SELECT event_id, terms::text FROM event_search ORDER BY event_id").fetchall())
    assert stored[0] == stored[1] == [(1, "'new':1 'x':2"), (2, "'b':2 'it''s':1"), (3, "")]
