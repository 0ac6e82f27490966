"""What ingest's strict JSON parse refuses, and names, at and past each limit; and what it takes as the standard
library reads it. The parse runs on msgspec and falls back to the standard library's strict reading when msgspec
refuses a body: it must answer exactly as that reading (`parse_object_stdlib`) does, for any bytes. (pydantic-core's
parser was tried before msgspec: on a 2.7 KB Dodo body it saved nothing once its missing overflow check was added.)"""

from __future__ import annotations

import json
import random

import pytest

from headrace.dodo import samples
from headrace.ingest.body import MAX_JSON_DEPTH, BodyError, parse_object, parse_object_stdlib


def _answer(body: bytes, parse=parse_object) -> object:
    try:
        return repr(parse(body))  # repr: 1 and 1.0, 0.0 and -0.0 differ
    except BodyError as exc:
        return ("refused", exc.reason, exc.message)


@pytest.mark.parametrize(
    ("body", "reason", "names"),
    [
        (b'{"amount": NaN}', "invalid_json", "NaN is not a JSON number"),
        (b'{"amount": -Infinity}', "invalid_json", "-Infinity is not a JSON number"),
        (b'{"amount": 1e999999}', "invalid_json", "1e999999 overflows a 64-bit float"),
        (b'{"amount": 1E+400}', "invalid_json", "1E+400 overflows a 64-bit float"),
        (b'{"amount": -2e0400}', "invalid_json", "-2e0400 overflows a 64-bit float"),
        (b'{"amount": 1' + b"0" * 250 + b"e99}", "invalid_json", "overflows a 64-bit float"),
        (b'{"amount": ' + b"9" * 400 + b".0}", "invalid_json", "overflows a 64-bit float"),
        (b'{"name": "\\ud800"}', "invalid_json", "lone UTF-16 surrogate"),
        (b'{"name": "\\udc00 after"}', "invalid_json", "lone UTF-16 surrogate"),
        (b'{"\\ud800": 1}', "invalid_json", "lone UTF-16 surrogate"),
        (b'{"name": "\xff"}', "invalid_json", "not UTF-8 (byte 10)"),
        (b'{"a": 1,}', "invalid_json", "not valid JSON"),
        (b'\xef\xbb\xbf{"a": 1}', "invalid_json", "not valid JSON"),  # a byte order mark before the object
        (b'{"a": 1} {"b": 2}', "invalid_json", "not valid JSON"),  # more after the object
        (b'{"a": "line\nbreak"}', "invalid_json", "not valid JSON"),
        (b"[1, 2]", "not_an_object", "must be a JSON object"),
        (b'{"a":' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1), "too_deep", "deeper than 64"),
        (b'{"a":' * 300 + b"1" + b"}" * 300, "too_deep", "deeper than 64"),
        (b'{"a": [' + b"[" * 70 + b"]" * 70 + b"]}", "too_deep", "deeper than 64"),
    ],
)
def test_a_refusal_names_what_is_wrong(body: bytes, reason: str, names: str):
    answer = _answer(body)
    assert answer == _answer(body, parse_object_stdlib)
    assert isinstance(answer, tuple) and answer[1] == reason and names in str(answer[2]), answer


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":' * MAX_JSON_DEPTH + b"1" + b"}" * MAX_JSON_DEPTH,
        b'{"emoji": "\\ud83d\\ude00", "e": 1e5, "max": 1.7976931348623157e308, "tiny": 5e-324}',
        b'{"big": 123456789012345678901234567890, "neg": -0.0, "id": "pay_1e5x"}',
    ],
)
def test_strict_json_at_the_limits_is_taken_as_the_standard_library_reads_it(body: bytes):
    assert parse_object(body) == json.loads(body)
    assert repr(parse_object(body)) == repr(json.loads(body))


# Pieces that parsers disagree on: numbers at and past a float's and an int's limits, escapes and surrogates, bytes
# that are not UTF-8 or are overlong, whitespace JSON does not allow, literals it does not have, nesting.
# fmt: off
_PIECES = [
    b"NaN", b"-Infinity", b"1e308", b"1e309", b"-1e-400", b"1" + b"0" * 400, b"9" * 4300, b"9" * 4301, b"-0", b"-0.0",
    b"01", b"1.", b".5", b"+1", b"1e", b"1E+2", b"0x10", b'"\\ud800"', b'"\\udc00\\ud800"', b'"\\ud83d\\ude00"',
    b'"\\u00e9"', b'"\\uZZZZ"', b'"\\x41"', b'"\\/"', b'"\t"', b'"\x00"', b'"\xff"', b'"\xed\xa0\x80"',
    b'"\xc0\xaf"', b'"\xf4\x90\x80\x80"', b'"\xe2\x82"', b'"\xe2\x82\xac"', b"\x0c", b"\x0b", b"\xc2\xa0",
    b"\xef\xbb\xbf",
    b"true", b"tru", b"null", b"[", b"]", b"{", b"}", b",", b":", b'"a"', b"[[[[", b"]]]]", b" ", b"\r\n",
]
# fmt: on


def _mutated(rng: random.Random, body: bytes) -> bytes:
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(body) + 1)
        cut = rng.choice((0, 0, 1, rng.randint(1, 8)))
        body = body[:at] + rng.choice(_PIECES) + body[at + cut :]
    return body


def _generated(rng: random.Random, depth: int = 0) -> bytes:
    kind = rng.randrange(6 if depth < 8 else 3)
    if kind == 0:
        return rng.choice(_PIECES)
    if kind == 1:
        return str(rng.choice((rng.randint(-(10**30), 10**30), rng.uniform(-1e300, 1e300), rng.random()))).encode()
    if kind == 2:
        return json.dumps(
            "".join(chr(rng.choice((rng.randint(0, 0x7F), rng.randint(0, 0x10FFFF)))) for _ in range(4)),
            ensure_ascii=rng.random() < 0.5,
        ).encode("utf-8", "surrogatepass")
    if kind == 3:
        return b"[" + b",".join(_generated(rng, depth + 1) for _ in range(rng.randint(0, 3))) + b"]"
    items = [b'"k%d":' % i + _generated(rng, depth + 1) for i in range(rng.randint(0, 3))]
    return b"{" + b",".join(items) + b"}"


def test_the_fast_parse_answers_as_the_standard_library_reading_does_for_any_bytes():
    """Every Dodo sample, each mutated 40 ways with the pieces above, and 4,000 generated documents: the same
    object (by repr) or the same refusal, reason and message."""
    rng = random.Random(22)
    bodies = []
    for event_type in samples.EVENT_TYPES:
        body = json.dumps(samples.load(event_type)).encode()
        bodies.append(body)
        bodies.extend(_mutated(rng, body) for _ in range(40))
    bodies.extend(_generated(rng) for _ in range(4000))
    bodies.extend(b'{"a":' * depth + b"1" + b"}" * depth for depth in range(60, 70))
    mismatches = [body[:120] for body in bodies if _answer(body) != _answer(body, parse_object_stdlib)]
    assert not mismatches, mismatches[:5]
    accepted = sum(1 for body in bodies if not isinstance(_answer(body), tuple))
    assert 500 < accepted < len(bodies) - 500  # both sides of the line were exercised
