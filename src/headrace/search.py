"""Payload search, decided once: what of an event is indexed, how a query reads, and the query in each
database's own syntax (SQLite FTS5 MATCH, PostgreSQL tsquery). Pure: no I/O.

Indexed (after the commit, by headrace/ops/indexer.py, from a queue ingest fills in the event's transaction): the
webhook id, the body's `business_id`, and every string inside `data` (ids, emails, names, metadata values,
addresses), except date-times. Each string gives *terms*, case-folded and with the accents of Latin letters
removed: its words (runs of letters, digits and `_`, so `pay_0NW3xyz` is one word) and each part between
spaces that is more than one word, whole (`ada@example.com`, `DODO-7F3K-9QXA`, `ORD-10042`).

A query is words separated by spaces, all of which must match (AND). A word matches whole words (`ada`, not
`adam`); an id or code (a digit, `_` or punctuation inside) of 3 characters or more also matches as a prefix
(`pay_0NW` finds `pay_0NWiH1kVq6…`), and so does a word of 3 or more ending in `*` (`lovel*`).
A word with punctuation (`ada@example.com`, `ada.love`, `ORD-10042`) matches a whole part of a value that
starts with it. Text in double quotes is a phrase: those words next to each other (`"quill example org"`
finds `zoe.quill@example.org`). A query with no letter or digit matches nothing. Nothing else is special:
`-`, `:`, `NEAR`, `OR` are plain text.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

MAX_QUERY_CHARS = 200  # a longer `q` is refused (400), not cut
MAX_TERM_CHARS = 128  # longer terms are cut to this, in the index and in queries alike
MAX_VALUE_CHARS = 1000  # only the start of a long string is indexed
MAX_TERMS = 1000  # per event
MIN_PREFIX = 3  # shorter words match whole terms only (a 1-letter prefix would match most of the index)

_WORD = re.compile(r"\w+")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_QUERY_TOKEN = re.compile(r'"([^"]*)"?|(\S+)')


# Accents on Latin letters (a combining mark right after a Latin letter, once decomposed): `José` is found
# by `jose`, `Zoë` by `zoe`. Other scripts keep their marks (Cyrillic й, Greek ά, Devanagari signs).
_LATIN_MARKS = re.compile(r"(?<=[a-z\u00df-\u024f\u1e00-\u1eff])[\u0300-\u036f]+")


def fold(text: str) -> str:
    """Case-folded (NFKC, then casefold), and Latin letters without their accents."""
    if text.isascii():
        return text.lower()  # NFKC leaves ASCII as it is, and casefold is lower there: the common case, fast
    folded = unicodedata.normalize("NFKC", text).casefold()
    if folded.isascii():
        return folded
    return unicodedata.normalize("NFC", _LATIN_MARKS.sub("", unicodedata.normalize("NFD", folded)))


def _cut(term: str) -> str:
    return term[:MAX_TERM_CHARS]


def terms(text: str) -> list[str]:
    """The terms of folded text: for each part between spaces, its words, then the part itself when it is
    more than one word (an email, `ORD-10042`, a license key)."""
    found: list[str] = []
    append = found.append
    for chunk in text.split():
        if chunk.isalnum() or chunk.replace("_", "").isalnum():  # one word (all \w): most parts, found fast
            append(chunk)
            continue
        words = _WORD.findall(chunk)
        found += words
        if (len(words) != 1 or words[0] != chunk) and _whole(chunk):
            append(chunk)
    if found and max(map(len, found)) > MAX_TERM_CHARS:  # a long word (a whole part is never one): cut it
        return [_cut(term) for term in found]
    return found


def _whole(chunk: str) -> bool:
    """A part between spaces indexed whole: short, printable (no control character)."""
    return len(chunk) <= MAX_TERM_CHARS and chunk.isprintable()


_SHALLOW = 32  # nesting walked by recursion (Dodo's bodies nest about 5 deep); deeper, by an explicit stack


def _strings(value: Any) -> list[str]:
    """Every string in a JSON value, in document order; bodies may nest deeper than Python's recursion limit."""
    found: list[str] = []
    if _walk((value,), found, 0):
        return found
    found.clear()
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is str:
            found.append(item)
        elif type(item) is dict:
            stack.extend(reversed(item.values()))
        elif type(item) is list:
            stack.extend(reversed(item))
    return found


def _walk(items: Any, found: list[str], depth: int) -> bool:
    """`_strings` by recursion (about twice as fast); False, with `found` partly filled, past `_SHALLOW` deep."""
    for item in items:
        kind = type(item)
        if kind is str:
            found.append(item)
        elif (kind is dict or kind is list) and (
            depth == _SHALLOW or not _walk(item.values() if kind is dict else item, found, depth + 1)
        ):
            return False
    return True


_FAST = msgspec.json.Decoder()


def _parsed(body: bytes) -> Any:
    """The stored body parsed; None when it is not JSON. msgspec's parser takes ~5 us on a 2.7 KB body against
    the standard library's ~12 us (pydantic-core's, used before, ~7 us), but refuses some JSON the standard library
    reads (NaN, a number past a float's range, a lone surrogate escape: a body stored before ingest refused them,
    or by reconcile): the standard library reads those. The strings, so the terms, are the same either way."""
    try:
        return _FAST.decode(body)
    except (msgspec.DecodeError, ValueError, RecursionError):
        pass
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


_ENOUGH = MAX_TERMS * MAX_TERM_CHARS  # characters of values: more than the terms kept could hold


def _bounded(values: list[str]) -> list[str]:
    """Each value's first MAX_VALUE_CHARS, and no more values after those that reach `_ENOUGH` characters."""
    found, size = [], 0
    for text in values:
        found.append(text[:MAX_VALUE_CHARS])
        size += len(found[-1])
        if size > _ENOUGH:
            break
    return found


def document(webhook_id: str, body: bytes, parsed: Any = None) -> str:
    """The event's terms as one space-separated text (what both dialects index, positions in order).
    `parsed`: the body already parsed (ingest has it); None parses `body` here."""
    values = [webhook_id]
    if parsed is None:
        parsed = _parsed(body)
    if isinstance(parsed, dict):
        kept = [
            text
            for text in _strings([parsed.get("business_id"), parsed.get("data")])
            if len(text) < 16 or text[4] != "-" or _DATETIME.match(text) is None  # no date-time; the first two: fast
        ]
        if kept and (max(map(len, kept)) > MAX_VALUE_CHARS or sum(map(len, kept)) > _ENOUGH):
            kept = _bounded(kept)
        values += kept
    # Folded in one go: a newline between values keeps every part inside its value.
    return " ".join(terms(fold("\n".join(values)))[:MAX_TERMS])


# -- queries -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phrase:
    """Words next to each other; the last one may match as a prefix."""

    words: tuple[str, ...]
    prefix: bool


Clause = tuple[Phrase, ...]  # alternatives: any one matching is enough


class QueryError(ValueError):
    pass


def parse(q: str) -> list[Clause]:
    """The clauses of a query (all must match); none when it has no letter or digit (it matches nothing).
    QueryError (too long) says what to change."""
    if len(q) > MAX_QUERY_CHARS:
        raise QueryError(f"q: at most {MAX_QUERY_CHARS} characters (got {len(q)}); search for one id or a few words")
    clauses: list[Clause] = []
    for match in _QUERY_TOKEN.finditer(q):
        quoted, bare = match.group(1), match.group(2)
        clause = _phrase_clause(quoted) if quoted is not None else _bare_clause(bare)
        if clause and clause not in clauses:
            clauses.append(clause)
    return clauses


def _phrase_clause(text: str) -> Clause:
    words = tuple(_cut(w) for w in _WORD.findall(fold(text)))
    return (Phrase(words, False),) if words else ()


def _bare_clause(token: str) -> Clause:
    """A word matches a term; a part with punctuation matches a whole part that starts with it (not its words
    next to each other: that would read every event's `example` and `com` for an email). Only ids and codes
    (a digit, `_` or punctuation inside) and words ending in `*` match as prefixes: a prefix read for a
    plain word (`ada`) would merge every term starting with it (`ada.lovelace123@…`) in a large index."""
    folded = fold(token)
    chunks = folded.rstrip("*").split()  # folding may make spaces (NFKC)
    if len(chunks) != 1 or not _WORD.search(chunks[0]):
        return _phrase_clause(token)  # only punctuation gives nothing; spaces made by folding: a phrase
    chunk = _cut(chunks[0])
    if not _whole(chunk):  # a control character inside: the index holds only its words
        return _phrase_clause(chunk)
    prefix = len(chunk) >= MIN_PREFIX and (folded.endswith("*") or not chunk.isalpha())
    return (Phrase((chunk,), prefix),)


def fts5(clauses: list[Clause]) -> str:
    """SQLite FTS5 MATCH text: every term a quoted string (`"` doubled), so no query syntax gets through."""

    def term(word: str) -> str:
        return '"' + word.replace('"', '""') + '"'

    def phrase(p: Phrase) -> str:
        return " + ".join(term(w) for w in p.words) + ("*" if p.prefix else "")

    return " AND ".join("(" + " OR ".join(phrase(p) for p in clause) + ")" for clause in clauses)


def tsquery(clauses: list[Clause]) -> str:
    """PostgreSQL tsquery text: every lexeme quoted (`'` doubled, `\\` escaped), read verbatim by `::tsquery`."""

    def term(word: str) -> str:
        return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"

    def phrase(p: Phrase) -> str:
        return " <-> ".join(term(w) for w in p.words) + (":*" if p.prefix else "")

    return " & ".join("(" + " | ".join(phrase(p) for p in clause) + ")" for clause in clauses)


RENDER = {"sqlite": fts5, "postgresql": tsquery}


# -- the indexed form --------------------------------------------------------------------------------------


def tsvector(document: str) -> str:
    """`document` (space-separated terms) as PostgreSQL tsvector text: every term quoted at its 1-based
    position, read verbatim by `::tsvector` (no parser or dictionary touches it). Built here, not in SQL:
    splitting and quoting in the server cost it about twice the CPU of parsing the finished text."""
    words = document.split(" ")
    if "'" in document or "\\" in document:
        words = [w.replace("\\", "\\\\").replace("'", "''") for w in words]
    return " ".join([f"'{w}':{n}" for n, w in enumerate(words, 1) if w])


def _as_is(document: str) -> str:
    return document  # SQLite FTS5: its tokenizer splits at the spaces


INDEXED: dict[str, Callable[[str], str]] = {"sqlite": _as_is, "postgresql": tsvector}  # index_event's form


def indexed(document: str, dialect: str) -> str:
    """`document` in the form `dialect`'s index is written with."""
    return INDEXED[dialect](document)


def render(q: str, dialect: str) -> str | None:
    """The query in `dialect`'s syntax, or None when it can match nothing."""
    clauses = parse(q)
    return RENDER[dialect](clauses) if clauses else None
