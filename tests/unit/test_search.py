"""What payload search indexes and how a query reads (headrace/search.py); the databases' side is in
tests/integration/test_search_contract.py."""

from __future__ import annotations

import json

import pytest

from headrace import search
from headrace.search import MAX_QUERY_CHARS, MAX_TERM_CHARS, MAX_TERMS, Phrase, QueryError


def doc(data: object, **top: object) -> list[str]:
    return search.document(
        "msg_1", json.dumps({"business_id": "bus_X", "type": "t", **top, "data": data}).encode()
    ).split()


def test_ids_emails_names_and_metadata_are_terms_and_date_times_are_not():
    terms = doc(
        {
            "payment_id": "pay_0NWiH1kVq6",
            "created_at": "2025-10-01T14:32:10Z",
            "customer": {"email": "Ada.Lovelace@Example.com", "name": "Ada Lovelace"},
            "metadata": {"order": "ORD-10042", "tags": ["vip", {"deep": "Grüße"}]},
            "total_amount": 4999,
        }
    )
    assert terms == [
        "msg_1",
        "bus_x",
        "pay_0nwih1kvq6",
        "ada",
        "lovelace",
        "example",
        "com",
        "ada.lovelace@example.com",
        "ada",
        "lovelace",
        "ord",
        "10042",
        "ord-10042",
        "vip",
        "grusse",  # case-folded, without the accent
    ]


def test_a_body_that_is_not_json_or_nests_deeply_gives_the_webhook_id_only_or_its_strings():
    assert search.document("msg_1", b"not json") == "msg_1"
    nested = b'{"data": ' + b"[" * 500 + b'"bottom"' + b"]" * 500 + b"}"
    assert search.document("msg_1", nested) == "msg_1 bottom"  # walked without recursion
    too_deep = b'{"data": ' + b"[" * 100_000 + b'"bottom"' + b"]" * 100_000 + b"}"
    assert search.document("msg_1", too_deep) == "msg_1"  # the parser's recursion limit: the webhook id only


def test_limits_on_terms_values_and_control_characters():
    many = doc({"k": [f"w{i}" for i in range(5000)]})
    assert len(many) == MAX_TERMS and many[-1] == f"w{MAX_TERMS - 3}"
    assert len(doc({"k": " ".join(f"w{i}" for i in range(5000))})) < 300  # only a value's first 1000 characters
    long = doc({"k": "x" * 5000})
    assert long[-1] == "x" * MAX_TERM_CHARS
    hostile = doc({"k": 'a\x00b c\ud800d e\'f\\g "h"'})
    assert "a\x00b" not in hostile and all(t.isprintable() for t in hostile)
    assert "e'f\\g" in hostile and '"h"' in hostile


def test_query_length_is_refused_past_the_limit_only():
    assert search.parse("x" * MAX_QUERY_CHARS)
    with pytest.raises(QueryError, match=rf"q: at most {MAX_QUERY_CHARS} characters \(got {MAX_QUERY_CHARS + 1}\)"):
        search.parse("x" * (MAX_QUERY_CHARS + 1))


def test_query_words_phrases_prefixes_and_punctuation():
    assert search.parse('pay_0NW* Ada lovel* "Ada  Lovelace" ab ab* ada@Example.com - ***') == [
        (Phrase(("pay_0nw",), True),),  # an id: a prefix
        (Phrase(("ada",), False),),  # a word: whole words
        (Phrase(("lovel",), True),),  # unless it ends in *
        (Phrase(("ada", "lovelace"), False),),
        (Phrase(("ab",), False),),  # under 3 characters: whole words only, * or not
        (Phrase(("ada@example.com",), True),),
    ]
    assert search.parse("Ada ada ADA") == [(Phrase(("ada",), False),)]
    assert search.parse('" * - :') == []


def test_rendering_quotes_every_term_so_no_operator_gets_through():
    clauses = search.parse("x\"y o'r a\\b NEAR(c")
    assert search.fts5(clauses) == '("x""y"*) AND ("o\'r"*) AND ("a\\b"*) AND ("near(c"*)'
    assert search.tsquery(clauses) == "('x\"y':*) & ('o''r':*) & ('a\\\\b':*) & ('near(c':*)"
    phrase = search.parse('"ada lovelace" pay pay*')
    assert search.fts5(phrase) == '("ada" + "lovelace") AND ("pay") AND ("pay"*)'
    assert search.tsquery(phrase) == "('ada' <-> 'lovelace') & ('pay') & ('pay':*)"
    assert search.render("***", "sqlite") is None


def test_terms_from_the_body_ingest_already_parsed_are_the_terms_of_the_raw_body() -> None:
    import json

    from headrace import search
    from headrace.dodo import samples

    for event_type in ("payment.succeeded", "subscription.active", "dispute.opened"):
        body = json.dumps(samples.load(event_type)).encode()
        assert search.document("msg_1", body, json.loads(body)) == search.document("msg_1", body)


def test_a_stored_body_the_fast_parser_refuses_gives_the_terms_the_standard_library_reads() -> None:
    """search._parsed tries msgspec first; what it refuses and the standard library reads (NaN, a number past a
    float's range, a lone surrogate escape) still gives every string's terms."""
    import json

    from headrace import search

    for body in (
        b'{"data": {"note": "Ada Lovelace", "amount": NaN}}',
        b'{"data": {"note": "Ada \\ud800 Lovelace"}}',
        b'{"data": {"note": "Ada Lovelace", "amount": 1e999}}',
        b'{"data": ' + b"[" * 300 + b'"Ada Lovelace"' + b"]" * 300 + b"}",
    ):
        document = search.document("msg_1", body)
        assert document == search.document("msg_1", body, json.loads(body)), body[:60]
        assert "ada" in document.split() and "lovelace" in document.split()


def _reference_document(webhook_id: str, parsed: object) -> str:
    """`search.document` written plainly (as it was before it was made faster): the rule the fast one keeps."""
    values = [webhook_id]
    if isinstance(parsed, dict):
        strings, stack, size = [], [[parsed.get("business_id"), parsed.get("data")]], 0
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                strings.append(item)
            elif isinstance(item, dict | list):
                stack.extend(reversed(list(item.values()) if isinstance(item, dict) else item))
        for text in strings:
            if not search._DATETIME.match(text):
                values.append(text[: search.MAX_VALUE_CHARS])
                size += len(values[-1])
                if size > MAX_TERMS * MAX_TERM_CHARS:
                    break
    found: list[str] = []
    for chunk in search.fold("\n".join(values)).split():
        words = [w[:MAX_TERM_CHARS] for w in search._WORD.findall(chunk)]
        found += words
        if words != [chunk] and len(chunk) <= MAX_TERM_CHARS and chunk.isprintable():
            found.append(chunk)
    return " ".join(found[:MAX_TERMS])


def test_the_terms_are_those_of_the_plain_rule_for_any_body() -> None:
    import random

    from headrace.dodo import samples

    pieces = [*"aZ09_ -.@/:'\"\\\n\t", "É", "ß", "ﬁ", "й", "\x00", "\u200b", "\u2028", "\xa0", "²", "٣", "ǅ", "\x1c"]
    pieces += ["\u0301", "\ud800", "2025-10-01T14:32:10Z", "x" * 130, "___", "ada.lovelace@example.com"]
    rng = random.Random(7)

    def text() -> str:
        return "".join(rng.choice(pieces) for _ in range(rng.choice([0, 1, 2, 5, 10, 30, 200])))

    def value(depth: int) -> object:
        roll = rng.random()
        if depth < 40 and roll < 0.2:
            return {text(): value(depth + 1) for _ in range(rng.randint(0, 4))}
        if depth < 40 and roll < 0.35:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        if roll < 0.45:
            return rng.choice([1, 2.5, None, True, "2025-10-01T14:32:10Z", "x" * rng.choice([999, 1000, 1001])])
        return text()

    bodies: list[object] = [{"business_id": value(3), "data": value(0)} for _ in range(3000)]
    bodies += [json.loads(json.dumps(samples.load(name))) for name in samples.EVENT_TYPES]
    bodies += [{"data": json.loads("[" * 40 + '"x", "y"], "z"' + "]" * 39)}]  # past the recursive walk's depth
    bodies += [{"data": [f"w{i} " * 300 for i in range(600)]}]  # past the characters the terms kept could hold
    for parsed in bodies:
        assert search.document("msg_1", b"", parsed) == _reference_document("msg_1", parsed), parsed
