"""Payload search (headrace/search.py), one contract on real SQLite (FTS5) and PostgreSQL (tsvector + GIN)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from headrace.dodo.samples import load as load_sample
from headrace.models import EventFilter, NewEvent
from headrace.search import MAX_QUERY_CHARS, QueryError
from headrace.store.core import Store
from headrace.store.queries import migrations
from headrace.store.sqlite import SQLiteStore
from tests.integration import test_store_contract as contract
from tests.integration.test_store_contract import routes, run


@pytest.fixture(params=[pytest.param(n, marks=contract.MARKS.get(n, [])) for n in sorted(contract.FACTORIES)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    """The store contract's stores: SQLite, and PostgreSQL (marked `postgres`)."""
    return lambda: contract.FACTORIES[request.param](request, tmp_path)


def sample(event_type: str, n: int, **changes: Any) -> dict[str, Any]:
    """A bundled sample whose ids are made unique to `n` (suffix), with `changes` merged into `data`."""
    text = json.dumps(load_sample(event_type))
    for prefix in ("pay_", "sub_", "cus_", "ref_", "dis_", "lic_", "bus_", "DODO-"):
        text = text.replace(prefix, f"{prefix}{n:04d}X")
    body = json.loads(text)
    body["data"].update(changes)
    return body


def new_event(body: dict[str, Any], webhook_id: str, at: float = 1000.0) -> NewEvent:
    return NewEvent("dodo", webhook_id, body["type"], 1000, at, json.dumps(body).encode(), {})


CORPUS = [
    ("payment.succeeded", {"metadata": {"order_ref": "ORD-777", "note": "gift for grandma"}}),
    ("subscription.active", {}),
    ("refund.succeeded", {}),
    ("dispute.opened", {}),
    ("license_key.created", {}),
    ("payment.failed", {"customer": {"customer_id": "cus_other", "email": "Zoe.Quill@Example.org",
                                     "name": "Zoë Quill", "metadata": {}}}),
    ("payment.succeeded", {"customer": {"customer_id": "cus_cyr", "email": "ivan@example.ru", "name": "Иван Петров",
                                        "metadata": {"crm": "Ключ-42"}}}),
]  # fmt: skip


async def ingest_corpus(store: Store) -> list[tuple[int, dict[str, Any]]]:
    stored = []
    for n, (event_type, changes) in enumerate(CORPUS, start=1):
        body = sample(event_type, n, **changes)
        result = await store.ingest(new_event(body, f"msg_{n:04d}"), routes("a") if n % 2 else [])
        stored.append((result.event_id, body))
    return stored


async def index_all(store: Store) -> int:
    """Run the indexer's rounds until the queue ingest filled is empty (`serve` does it in the background);
    returns how many ids were taken."""
    taken = 0
    while n := await store.index_pending(3):
        taken += n
    return taken


async def indexed_only(store: Store, q: str) -> list[int]:
    """What a search finds in the index as it is, nothing queued indexed first."""
    return [e.id for e in await store.list_events(EventFilter(q=q, limit=100))]


async def found(store: Store, q: str, **filters: Any) -> list[int]:
    """The events a search finds once everything stored is indexed."""
    await index_all(store)
    return [e.id for e in await store.list_events(EventFilter(q=q, limit=100, **filters))]


def test_every_id_kind_matches_exactly_and_by_prefix(make_store):
    async def scenario(store: Store) -> None:
        stored = await ingest_corpus(store)
        by_type = {body["type"]: (event_id, body["data"]) for event_id, body in reversed(stored)}
        pay_id, pay = by_type["payment.succeeded"]
        ids = {
            "payment": (pay["payment_id"], pay_id),
            "customer": (pay["customer"]["customer_id"], pay_id),
            "subscription": (by_type["subscription.active"][1]["subscription_id"], by_type["subscription.active"][0]),
            "refund": (by_type["refund.succeeded"][1]["refund_id"], by_type["refund.succeeded"][0]),
            "dispute": (by_type["dispute.opened"][1]["dispute_id"], by_type["dispute.opened"][0]),
            "license key": (by_type["license_key.created"][1]["key"], by_type["license_key.created"][0]),
            "license key id": (by_type["license_key.created"][1]["id"], by_type["license_key.created"][0]),
        }
        for kind, (value, event_id) in ids.items():
            assert await found(store, value) == [event_id], kind
            assert event_id in await found(store, value[:12]), f"{kind} by prefix {value[:12]}"
            assert event_id in await found(store, value.lower()), f"{kind} in lower case"
        # an id that is referenced by other events finds all of them, newest first
        business = pay["business_id"]
        assert await found(store, business) == [pay_id]  # only the first event carries this business suffix
        assert await found(store, "msg_0003") == [stored[2][0]]  # the webhook id too
        assert await found(store, "pay_0001Xnope") == []

    run(make_store, scenario)


def test_email_name_metadata_and_phrases(make_store):
    async def scenario(store: Store) -> None:
        stored = await ingest_corpus(store)
        zoe, ivan, first = stored[5][0], stored[6][0], stored[0][0]
        assert await found(store, "zoe.quill@example.org") == [zoe]
        assert await found(store, "ZOE.QUILL@EXAMPLE.ORG") == [zoe]
        assert await found(store, "zoe.quill@exa") == [zoe]  # the start of the whole email
        assert await found(store, "quill@example.org") == []  # not its start: search its words instead
        assert await found(store, '"quill example org"') == [zoe]
        assert await found(store, "zoë") == [zoe]
        assert await found(store, "Quill Zoë") == [zoe]  # words in any order
        assert await found(store, '"zoë quill"') == [zoe]
        assert await found(store, '"quill zoë"') == []  # a phrase keeps its order
        assert await found(store, "иван") == [ivan]
        assert await found(store, "петр") == []  # a word matches whole words
        assert await found(store, "петр*") == [ivan]  # or, with *, as a prefix
        assert await found(store, "ключ-42") == [ivan]
        assert await found(store, "ORD-777") == [first]
        assert await found(store, "grandma gift") == [first]
        assert await found(store, "grandma nobody") == []  # every word must match
        assert await found(store, "gr") == []  # under 3 characters: whole words only

    run(make_store, scenario)


HOSTILE = [
    '"',
    '""',
    "*",
    "pay_*",
    ":",
    "a:b",
    "terms:pay",
    "NEAR(pay sub)",
    "NEAR",
    "-",
    "-pay",
    "pay -sub",
    "a OR b",
    "AND",
    "NOT x",
    "(",
    ")(",
    "^pay",
    "'",
    "''",
    "\\",
    "\\'",
    "x' | 'y",
    "&|!<->:*",
    'pay_0001X" OR 1=1 --',
    "%_",
    "\x00",
    "a\x00b",
    "a\ud800b",
    "{}[]",
    "+",
    "zoë+quill",
    '"unbalanced phrase',
    "x" * MAX_QUERY_CHARS,
    " ".join(["ab"] * 66),
]


@pytest.mark.parametrize("q", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_queries_never_raise(make_store, q: str):
    async def scenario(store: Store) -> list[int]:
        await ingest_corpus(store)
        return await found(store, q)

    result = run(make_store, scenario)
    assert isinstance(result, list)
    if q == "pay_*":
        assert len(result) >= 1  # a trailing `*` is dropped: every word is a prefix already
    if q in ("-pay", "NOT x", "a OR b"):
        assert result == []  # text, not operators: no part starts with `-pay`, no event has `not`, `or`


def test_a_query_over_the_limit_is_refused_with_what_to_do():
    from headrace.views import event_filter

    assert event_filter({"q": "x" * MAX_QUERY_CHARS}, 0.0).q == "x" * MAX_QUERY_CHARS
    with pytest.raises(QueryError, match=f"at most {MAX_QUERY_CHARS} characters \\(got {MAX_QUERY_CHARS + 1}\\)"):
        event_filter({"q": "x" * (MAX_QUERY_CHARS + 1)}, 0.0)


def test_search_combines_with_status_type_source_since_and_pages(make_store):
    async def scenario(store: Store) -> None:
        ids = []
        for n in range(9):
            event_type = "payment.succeeded" if n % 3 else "refund.succeeded"
            body = sample(event_type, 100, metadata={"batch": "alpha"})  # the same ids in every event
            result = await store.ingest(new_event(body, f"msg_p{n}", at=1000.0 + n), routes("a") if n % 2 else [])
            ids.append((result.event_id, event_type, bool(n % 2), 1000.0 + n))
        await store.ingest(new_event(sample("payment.succeeded", 999), "msg_other"), routes("a"))
        newest = [i for i, *_ in reversed(ids)]
        assert await found(store, "pay_0100X") == newest
        refunds = [i for i, t, *_ in reversed(ids) if t == "refund.succeeded"]
        assert await found(store, "alpha", event_type="refund.succeeded") == refunds
        assert await found(store, "alpha", event_type="payment.*") == [i for i in newest if i not in refunds]
        assert await found(store, "alpha", status="unrouted") == [i for i, _, r, _ in reversed(ids) if not r]
        assert await found(store, "alpha", status="pending") == [i for i, _, r, _ in reversed(ids) if r]
        assert await found(store, "alpha", source="elsewhere") == []
        assert await found(store, "alpha", since=1005.0) == [i for i, *_, at in reversed(ids) if at >= 1005.0]
        pages, before = [], None
        while True:
            page = await store.list_events(EventFilter(q="cus_0100X", limit=4, before_id=before))
            pages.append([e.id for e in page])
            if len(page) < 4:
                break
            before = page[-1].id
        assert [len(p) for p in pages] == [4, 4, 1] and [i for p in pages for i in p] == newest

    run(make_store, scenario)


def test_a_deleted_event_leaves_the_index(make_store, request):
    async def scenario(store: Store) -> int:
        stored = await ingest_corpus(store)
        assert await index_all(store) == len(CORPUS)
        return stored[1][0]  # an unrouted event: no deliveries hold it

    event_id = run(make_store, scenario)
    if request.node.callspec.params["make_store"] == "sqlite":
        path = next(Path(request.getfixturevalue("tmp_path")).glob("contract.db"))
        with sqlite3.connect(path) as conn:
            conn.execute("DELETE FROM events WHERE id = ?", (event_id,))
            assert conn.execute("SELECT COUNT(*) FROM event_search WHERE rowid = ?", (event_id,)).fetchone() == (0,)
    else:
        import psycopg

        with psycopg.connect(request.getfixturevalue("pg_dsn"), autocommit=True) as conn:
            conn.execute("DELETE FROM events WHERE id = %s", (event_id,))
            row = conn.execute("SELECT COUNT(*) FROM event_search WHERE event_id = %s", (event_id,)).fetchone()
            assert row == (0,)


def test_events_stored_before_search_are_indexed_after_the_migration(tmp_path: Path):
    """A real version-3 SQLite file (before migration 0006) with events: opening it migrates, and the backlog
    is indexed in batches, newest first."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for number, _, sql in migrations("sqlite"):
        if number <= 3:
            conn.executescript(sql)
            conn.execute(f"PRAGMA user_version = {number}")
    bodies = [sample("payment.succeeded", n) for n in range(1, 8)]
    for n, body in enumerate(bodies, start=1):
        conn.execute(
            "INSERT INTO events (source, webhook_id, event_type, webhook_timestamp, received_at, body, headers) "
            "VALUES ('dodo', ?, ?, 1000, 1000.0, ?, '{}')",
            (f"msg_old{n}", body["type"], json.dumps(body).encode()),
        )
    conn.close()

    async def scenario() -> tuple[list[int], list[int], list[int]]:
        store = SQLiteStore(path)
        await store.open()
        try:
            # The backlog alone, without the queue (migration 0009 also queues every stored event).
            before = await indexed_only(store, "pay_0003X")
            left: list[int] = []
            await store.index_backlog(batch=3, progress=left.append)
            after = await indexed_only(store, "pay_0003X")
            await store.index_backlog()  # done: nothing to do twice
            return before, left, after + await indexed_only(store, "ada")
        finally:
            await store.close()

    before, left, after = asyncio.run(scenario())
    assert before == [] and left == [4, 1] and after[0] == 3 and after[1:] == [7, 6, 5, 4, 3, 2, 1]


def wipe_index(request: pytest.FixtureRequest) -> None:
    """Empty the search index and mark every event as waiting, as after `db copy`."""
    if request.node.callspec.params["make_store"] == "sqlite":
        with sqlite3.connect(Path(request.getfixturevalue("tmp_path")) / "contract.db") as conn:
            conn.execute("DELETE FROM event_search")
            conn.execute("UPDATE meta SET value = (SELECT MAX(id) FROM events) WHERE key = 'search_backlog'")
    else:
        import psycopg

        with psycopg.connect(request.getfixturevalue("pg_dsn"), autocommit=True) as conn:
            conn.execute("DELETE FROM event_search")
            conn.execute("UPDATE meta SET value = (SELECT MAX(id) FROM events)::text WHERE key = 'search_backlog'")


def test_the_backlog_is_indexed_on_every_dialect(make_store, request):
    """Events whose index rows are missing (as after `db copy`) are found once the backlog is indexed."""

    async def scenario(store: Store) -> tuple[list[int], list[int], list[int]]:
        await ingest_corpus(store)
        indexed = await found(store, "ada")
        wipe_index(request)
        missing = await found(store, "ada")
        await store.index_backlog()
        return indexed, missing, await found(store, "ada")

    indexed, missing, again = run(make_store, scenario)
    assert len(indexed) >= 3 and missing == [] and again == indexed


def test_the_query_cannot_inject(make_store):
    """Every query token is quoted: FTS5 and tsquery operators in `q` are text, so none changes the result."""

    async def scenario(store: Store) -> None:
        stored = await ingest_corpus(store)
        assert await found(store, "zoë OR ada") == []  # no event has all three words (OR is a word here)
        assert await found(store, "zoë | ada") == await found(store, "zoë ada")  # `|` alone: nothing to look up
        assert await found(store, "NEAR(zoë ada)") == []
        assert await found(store, "zoë:*") == []  # `:` is text (no part starts with `zoë:`), not a tsquery weight
        assert await found(store, "zoë*") == [stored[5][0]]

    run(make_store, scenario)


def test_a_query_with_nothing_to_look_up_matches_nothing(make_store):
    async def scenario(store: Store) -> list[int]:
        await ingest_corpus(store)
        return await found(store, '*** -- "" :')

    assert run(make_store, scenario) == []


def test_instances_that_start_together_index_the_backlog_once(make_store, request):
    """Two stores on one database (two `serve` processes starting at once) each run the backfill."""

    async def scenario(store: Store) -> tuple[list[int], list[int]]:
        await ingest_corpus(store)
        indexed = await found(store, "ada")
        wipe_index(request)
        other = contract.FACTORIES[request.node.callspec.params["make_store"]](
            request, request.getfixturevalue("tmp_path")
        )
        await other.open()
        try:
            await asyncio.gather(store.index_backlog(batch=2), other.index_backlog(batch=2))
        finally:
            await other.close()
        return indexed, await found(store, "ada")

    indexed, again = run(make_store, scenario)
    assert again == indexed and len(indexed) >= 3


def sql(request: pytest.FixtureRequest, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement on the store's database from outside headrace; `?` placeholders on both dialects."""
    if request.node.callspec.params["make_store"] == "sqlite":
        with sqlite3.connect(Path(request.getfixturevalue("tmp_path")) / "contract.db") as conn:
            return conn.execute(statement, params).fetchall()
    import psycopg

    with psycopg.connect(request.getfixturevalue("pg_dsn"), autocommit=True) as conn:
        cursor = conn.execute(statement.replace("?", "%s"), params)
        return cursor.fetchall() if cursor.description else []


def test_ingest_queues_every_stored_event_and_the_indexer_indexes_it_after_the_commit(make_store, request):
    """Ingest writes no index row (that halved ingest): the event's id is queued in its transaction, and
    index_pending indexes the queue newest first, in rounds. A duplicate is queued once."""

    async def scenario(store: Store) -> None:
        stored = await ingest_corpus(store)
        await store.ingest(new_event(sample("payment.succeeded", 1), "msg_0001"), [])  # Dodo sends it again
        assert sql(request, "SELECT COUNT(*) FROM event_search") == [(0,)]
        assert (await store.queue_stats()).search_pending == len(CORPUS)
        assert await store.list_events(EventFilter(q="ada", limit=100)) == []  # not indexed yet
        assert await store.index_pending(3) == 3
        assert (await store.queue_stats()).search_pending == len(CORPUS) - 3
        assert sorted(row[0] for row in sql(request, "SELECT event_id FROM search_pending")) == [
            event_id for event_id, _ in stored[:-3]
        ]
        assert await store.index_pending(100) == len(CORPUS) - 3
        assert await store.index_pending(100) == 0
        assert (await store.queue_stats()).search_pending == 0
        assert sql(request, "SELECT COUNT(*) FROM event_search") == [(len(CORPUS),)]
        assert len(await found(store, "ada")) >= 3

    run(make_store, scenario)


def test_an_event_deleted_before_its_turn_is_dequeued_without_an_index_row(make_store, request):
    column = "rowid" if request.node.callspec.params["make_store"] == "sqlite" else "event_id"

    async def scenario(store: Store) -> list[tuple[Any, ...]]:
        stored = await ingest_corpus(store)
        gone = stored[1][0]  # unrouted: no deliveries hold it
        sql(request, "DELETE FROM events WHERE id = ?", gone)
        assert await store.index_pending(100) == len(CORPUS)  # the gone one is taken from the queue too
        assert (await store.queue_stats()).search_pending == 0
        return sql(request, "SELECT COUNT(*) FROM event_search") + sql(
            request, f"SELECT COUNT(*) FROM event_search WHERE {column} = ?", gone
        )

    assert run(make_store, scenario) == [(len(CORPUS) - 1,), (0,)]


def test_two_indexers_on_one_database_index_each_event_once(make_store, request):
    """Two `serve` processes index the same queue at once (PostgreSQL instances, or a second process on one
    SQLite file): every id is taken by exactly one of them, every event gets one index row, neither fails."""

    async def scenario(store: Store) -> tuple[int, list[tuple[Any, ...]], list[int]]:
        for n in range(60):
            await store.ingest(new_event(sample("payment.succeeded", n), f"msg_two{n}"), [])
        other = contract.FACTORIES[request.node.callspec.params["make_store"]](
            request, request.getfixturevalue("tmp_path")
        )
        await other.open()
        try:

            async def drain(s: Store) -> int:
                taken = 0
                while n := await s.index_pending(7):
                    taken += n
                return taken

            taken = await asyncio.gather(drain(store), drain(other))
        finally:
            await other.close()
        return sum(taken), sql(request, "SELECT COUNT(*) FROM event_search"), await found(store, "pay_0042X")

    taken, rows, hits = run(make_store, scenario)
    assert taken == 60 and rows == [(60,)] and len(hits) == 1


def test_a_round_that_fails_leaves_its_ids_in_the_queue(make_store, request):
    """Nothing stored is left out of the index: a round whose write fails (here the index table is away)
    puts its ids back, and the next round indexes them."""

    async def scenario(store: Store) -> tuple[int, int, list[int]]:
        await ingest_corpus(store)
        sql(request, "ALTER TABLE event_search RENAME TO event_search_away")
        try:
            with pytest.raises(Exception, match="event_search"):
                await store.index_pending(100)
            waiting = (await store.queue_stats()).search_pending
        finally:
            sql(request, "ALTER TABLE event_search_away RENAME TO event_search")
        return waiting, await store.index_pending(100), await found(store, "ada")

    waiting, taken, hits = run(make_store, scenario)
    assert waiting == len(CORPUS) and taken == len(CORPUS) and len(hits) >= 3


def test_accents_on_latin_letters_do_not_matter_and_other_scripts_keep_their_marks(make_store):
    async def scenario(store: Store) -> None:
        stored = await ingest_corpus(store)
        zoe, ivan = stored[5][0], stored[6][0]
        body = sample("payment.succeeded", 8, customer={"customer_id": "cus_jose", "email": "j@example.es",
                                                         "name": "José Niño", "metadata": {}})  # fmt: skip
        jose = (await store.ingest(new_event(body, "msg_0008"), [])).event_id
        assert await found(store, "zoe") == await found(store, "Zoë") == await found(store, "ZOË") == [zoe]
        assert await found(store, "jose nino") == await found(store, "José Niño") == [jose]
        assert await found(store, '"quill zoe"') == []  # a phrase keeps its order, accents or not
        assert await found(store, "иван") == [ivan]
        assert await found(store, "ив\u0061н") == []  # a Latin "a" inside the Cyrillic word: another word

    run(make_store, scenario)


def test_events_indexed_before_accents_were_folded_are_indexed_again(tmp_path: Path):
    """A real version-8 SQLite file, its event indexed with the old rule (`zoë`): opening it migrates to 9,
    which queues every stored event, and the indexer replaces the row."""
    path = tmp_path / "v8.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for number, _, script in migrations("sqlite"):
        if number <= 8:
            conn.executescript(script)
            conn.execute(f"PRAGMA user_version = {number}")
    body = sample("payment.failed", 6, customer={"customer_id": "cus_z", "email": "z@example.org",
                                                 "name": "Zoë Quill", "metadata": {}})  # fmt: skip
    conn.execute(
        "INSERT INTO events (source, webhook_id, event_type, webhook_timestamp, received_at, body, headers) "
        "VALUES ('dodo', 'msg_v8', 'payment.failed', 1000, 1000.0, ?, '{}')",
        (json.dumps(body).encode(),),
    )
    conn.execute("DELETE FROM search_pending")  # indexed at version 8, as its indexer did:
    conn.execute("INSERT INTO event_search (rowid, terms) VALUES (1, 'msg_v8 zoë quill z@example.org')")
    conn.close()

    async def scenario() -> tuple[list[int], int, list[int], list[int]]:
        store = SQLiteStore(path)
        await store.open()
        try:
            before = await indexed_only(store, "zoe")
            queued = (await store.queue_stats()).search_pending
            return before, queued, await found(store, "zoe"), await found(store, "z@example.org")
        finally:
            await store.close()

    before, queued, after, by_email = asyncio.run(scenario())
    assert before == [] and queued == 1 and after == [1] and by_email == [1]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM event_search").fetchone() == (1,)  # replaced, not added


def test_the_queue_is_counted_up_to_its_cap(make_store, monkeypatch: pytest.MonkeyPatch):
    """/metrics counts the queue with a LIMIT, so a scrape stays cheap however many events wait."""
    from headrace.store.programs import search as search_programs

    monkeypatch.setattr(search_programs, "SEARCH_PENDING_CAP", 3)

    async def scenario(store: Store) -> tuple[int, int]:
        await ingest_corpus(store)
        capped = (await store.queue_stats()).search_pending
        await store.index_pending(len(CORPUS) - 2)
        return capped, (await store.queue_stats()).search_pending

    assert run(make_store, scenario) == (3, 2)
