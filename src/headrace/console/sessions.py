"""Console sessions: a server-side table in this process's memory.

A session is a random id (the cookie) mapped to its expiry, its CSRF token and a fingerprint of the admin
token it was opened with. Sessions expire after `[server] session_lifetime`, end at logout, end when the
admin token they were opened with is no longer configured (changed or removed by a reload; with several
tokens configured during a rotation, a session lasts while its own token is still among them), and end
when headrace restarts (the table is in memory: log in again). At most MAX_SESSIONS live at once; opening
one more ends the oldest.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from headrace.config import Secret

MAX_SESSIONS = 1000


@dataclass(frozen=True)
class Session:
    expires_at: float
    csrf: str
    token_fingerprint: bytes


class Sessions:
    def __init__(self, lifetime: float, clock: Callable[[], float], limit: int = MAX_SESSIONS) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self.limit = limit
        self._key = secrets.token_bytes(32)  # per process: fingerprints mean nothing outside it
        self._table: dict[bytes, Session] = {}

    def _fingerprint(self, token: Secret) -> bytes:
        return hmac.new(self._key, token.reveal().encode("utf-8", "surrogateescape"), hashlib.sha256).digest()

    @staticmethod
    def _slot(session_id: str) -> bytes:
        return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).digest()

    def open(self, token: Secret) -> tuple[str, Session]:
        """A new session for someone who just proved they hold `token`; returns (cookie value, session)."""
        while len(self._table) >= self.limit:
            del self._table[next(iter(self._table))]  # the oldest
        session_id = secrets.token_urlsafe(32)
        session = Session(self.clock() + self.lifetime, secrets.token_urlsafe(32), self._fingerprint(token))
        self._table[self._slot(session_id)] = session
        return session_id, session

    def get(self, session_id: str, tokens: tuple[Secret, ...]) -> Session | None:
        """The live session for this cookie, opened with one of the admin tokens configured now, or None (and
        forget it if dead: expired, or its token was removed from the config)."""
        if not session_id or len(session_id) > 128:
            return None
        slot = self._slot(session_id)
        session = self._table.get(slot)
        if session is None:
            return None
        known = False
        for token in tokens:  # all compared: the time taken does not tell which token the session holds
            known |= hmac.compare_digest(session.token_fingerprint, self._fingerprint(token))
        if session.expires_at <= self.clock() or not known:
            del self._table[slot]
            return None
        return session

    def close(self, session_id: str) -> None:
        self._table.pop(self._slot(session_id), None)

    def __len__(self) -> int:
        return len(self._table)
