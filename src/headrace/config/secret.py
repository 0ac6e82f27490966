"""Secret, a value never shown, and the references a secret may be written as: `env:NAME` (an environment
variable, read at start-up) and `file:PATH` (a file of its own, read again at every reload)."""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

from headrace.files import NotRegular, TooLarge, read_at_most


class Secret:
    """A resolved secret. Never shown by str(), repr() or logging."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


SECRET_FILE_LIMIT = 65536  # bytes: a file: reference holds one secret or URL, not a document


def _resolve(value: str, environ: Mapping[str, str], base_dir: Path | None = None) -> str:
    if value.startswith("env:"):
        name = value[4:]
        if name not in environ or environ[name] == "":
            raise ValueError(f"environment variable {name} is not set (referenced as env:{name}); export it")
        return environ[name]
    if value.startswith("file:"):
        return _read_secret_file(Path(value[5:]), base_dir or Path("."))
    return value


def _read_secret_file(path: Path, base_dir: Path) -> str:
    """The content of a `file:PATH` reference (relative to the config file's folder), without its final line
    break. Read at start-up and at every reload: the way to rotate a secret the environment cannot change."""
    full = path if path.is_absolute() else base_dir / path
    try:
        data = read_at_most(full, SECRET_FILE_LIMIT)
    except NotRegular:
        raise ValueError(
            f"{full} (referenced as file:{path}) is not a regular file (a FIFO, a device or a directory): "
            "write the secret into a plain file"
        ) from None
    except TooLarge:
        raise ValueError(f"{full} (referenced as file:{path}) is larger than {SECRET_FILE_LIMIT} bytes") from None
    except OSError as exc:
        raise ValueError(f"cannot read {full} (referenced as file:{path}): {exc.strerror}") from None
    try:
        text = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ValueError(f"{full} (referenced as file:{path}) is not UTF-8 text") from None
    if not text:
        raise ValueError(f"{full} (referenced as file:{path}) is empty")
    return text


def resolve_reference(value: str, environ: Mapping[str, str] | None = None) -> str:
    """`value` itself, the environment variable an `env:NAME` value names, or the content of the file a
    `file:PATH` value names (ValueError if it is unset or unreadable)."""
    return _resolve(value, os.environ if environ is None else environ)


# Words and runs a guesser tries first: each counts as one character in `strength_bits`.
COMMON_WORDS = ("password", "passw0rd", "qwerty", "azerty", "letmein", "welcome", "changeme", "iloveyou", "dragon")
_SEQUENCE = "abcdefghijklmnopqrstuvwxyz0123456789"
_CLASSES = ((r"[a-z]", 26), (r"[A-Z]", 26), (r"[0-9]", 10), (r"[^a-zA-Z0-9]", 33))


def strength_bits(text: str) -> float:
    """A rough lower bound on the bits a guesser needs: the characters left once common words, repeats and
    runs (`aaaa`, `1234`, `dcba`) count as one each, times log2 of the size of the character classes used.
    `password12345678` scores about 10 bits, a `secrets.token_urlsafe(32)` about 250."""
    lowered = text.lower()
    for word in COMMON_WORDS:
        lowered = lowered.replace(word, "\0")
    kept = 0
    for i, ch in enumerate(lowered):
        if i < 2 or not _run(lowered[i - 2], lowered[i - 1], ch):
            kept += 1
    alphabet = sum(size for pattern, size in _CLASSES if re.search(pattern, text))
    return kept * math.log2(max(alphabet, 2))


def _run(a: str, b: str, c: str) -> bool:
    """Whether c continues a repeat or a run of a, b (ascending or descending, letters or digits)."""
    if a == b == c:
        return True
    i, j, k = (_SEQUENCE.find(x) for x in (a, b, c))
    return min(i, j, k) >= 0 and (j - i == k - j == 1 or j - i == k - j == -1)


_WHSEC = "whsec_"  # Standard Webhooks (dodo/signature.py); what Dodo's dashboard shows


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a webhook signing secret (`whsec_` + base64, at least 16 bytes), or a ValueError saying
    what is wrong with it; checked at load (config/sources.py) so a bad secret never reaches ingest."""
    body = secret.removeprefix(_WHSEC)
    try:
        key = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a signing secret is whsec_ followed by base64 (copy it from Dodo's dashboard)") from None
    if len(key) < 16:
        raise ValueError("a signing secret decodes to at least 16 bytes; this one is too short")
    return key
