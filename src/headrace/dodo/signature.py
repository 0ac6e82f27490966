"""Standard Webhooks signatures, the scheme Dodo signs its webhooks with: `verify` (pure: keys, headers, body,
now -> verified or error) for ingest, `sign` for the Dodo stand-in, `headrace send` and tests. A signing secret's
format (`whsec_` + base64) is config's: `headrace.config.secret.decode_secret` turns one into a key.

Signed content is `{webhook-id}.{webhook-timestamp}.{body}`, HMAC-SHA256 keyed with the base64-decoded
secret (after its `whsec_` prefix). `webhook-signature` is a space-separated list of `v1,<base64>`;
any one match against any configured secret is enough (rotation keeps old secrets valid for a while).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_ID_LENGTH = 256
MAX_TIMESTAMP_DIGITS = 12  # unix seconds until the year 33658; more is not a timestamp
MAX_SIGNATURES = 16  # v1,<base64> entries considered in one webhook-signature header
_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_ID_LENGTH}}}")
_TIMESTAMP = re.compile(rf"[0-9]{{1,{MAX_TIMESTAMP_DIGITS}}}")


class SignatureError(Exception):
    """Why a request was refused; `status` is the HTTP answer (400 malformed, 401 not authentic)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Verified:
    webhook_id: str
    timestamp: int


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature for one message (used by `headrace send` and tests)."""
    mac = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(
    keys: Sequence[bytes],
    webhook_id: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    tolerance: float,
) -> Verified:
    missing = [
        name
        for name, value in (
            ("webhook-id", webhook_id),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", signature),
        )
        if not value
    ]
    if missing:
        raise SignatureError(400, "missing_headers", f"missing header(s): {', '.join(missing)}")
    assert webhook_id is not None and timestamp is not None and signature is not None
    if len(webhook_id) > MAX_ID_LENGTH:
        raise SignatureError(400, "malformed_headers", f"webhook-id is longer than {MAX_ID_LENGTH} characters")
    if not _ID.fullmatch(webhook_id):
        raise SignatureError(
            400, "malformed_headers", "webhook-id must be printable ASCII without spaces (like msg_2Ab...)"
        )
    if not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureError(
            400, "malformed_headers", f"webhook-timestamp must be unix seconds (at most {MAX_TIMESTAMP_DIGITS} digits)"
        )
    sent_at = int(timestamp)
    if abs(now - sent_at) > tolerance:
        direction = "old" if sent_at < now else "far in the future"
        raise SignatureError(
            401,
            "timestamp_out_of_tolerance",
            f"webhook-timestamp is too {direction} ({int(now - sent_at)}s from now, tolerance {int(tolerance)}s); "
            "check the sender's clock",
        )
    candidates = []
    for item in signature.split(" ")[:MAX_SIGNATURES]:
        version, _, value = item.partition(",")
        if version == "v1" and value:
            try:
                candidates.append(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                continue
    if not candidates:
        raise SignatureError(400, "malformed_headers", "webhook-signature has no v1,<base64> entry")
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    for key in keys:
        expected = hmac.digest(key, signed, "sha256")  # OpenSSL's one-shot HMAC: the same bytes as hmac.new(...)
        # Compare against every candidate so timing does not depend on which one matched.
        matched = False
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate)
        if matched:
            return Verified(webhook_id=webhook_id, timestamp=sent_at)
    raise SignatureError(401, "bad_signature", "no webhook-signature matches a configured secret for this source")
