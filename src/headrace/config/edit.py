"""Editing headrace.toml the way a person would: change the tables a `connect` command owns, keep every comment
and every other table as written, and replace the file atomically (a crash leaves the old file or the new one,
never half of each). A save checks, under a lock on the config's folder, that the file is still what was
loaded: a second `connect` run at the same time (or an editor) that wrote it meanwhile is never overwritten;
this save is refused instead, naming the file, and changes nothing.

    config = ConfigFile.load(path)
    config.set_destination("payments", {"source": "dodo", "events": ["payment.*"], "url": url, ...})
    config.append_source_secret("dodo", "file:dodo-webhook-secret")
    config.save()

Values are plain TOML values (strings, integers, floats, booleans, lists of them). Secrets are written as the
references given (`env:NAME`, `file:PATH`); this module never resolves or checks them.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeAlias

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import Table

from headrace.config.loader import CONFIG_SIZE_LIMIT, ConfigError
from headrace.config.settings import _NAME
from headrace.files import NotRegular, TooLarge, read_at_most

TomlValue: TypeAlias = str | int | float | bool | Sequence[str | int | float | bool]

NEW_FILE_MODE = 0o600  # a config holds an admin token: a new one is readable by its owner only
LOCK_WAIT = 10.0  # seconds a save waits for another one in the same folder to finish


def _check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(f"[{kind}.{name}]: names are 1-64 letters, digits, '-' or '_'")


def _item(value: TomlValue) -> Any:
    if isinstance(value, str | int | float | bool):
        return value
    array = tomlkit.array()
    array.extend(list(value))
    return array


class ConfigFile:
    """One headrace.toml, loaded with its comments; changes stay in memory until save()."""

    def __init__(
        self, path: Path, document: tomlkit.TOMLDocument, mode: int | None, loaded: bytes | None = None
    ) -> None:
        self.path = path
        self._document = document
        self._mode = mode  # None: the file does not exist yet
        self._loaded = loaded  # the bytes read (None: no file): what save() expects to replace

    @classmethod
    def load(cls, path: str | Path) -> ConfigFile:
        """The file at `path`; a missing file is an empty document, created by save()."""
        path = Path(path)
        try:
            data = _read(path)
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            return cls(path, tomlkit.document(), None)
        except TooLarge:
            raise ConfigError(f"{path}: larger than {CONFIG_SIZE_LIMIT} bytes; is it the right file?") from None
        except NotRegular:
            raise ConfigError(f"{path}: not a regular file (a FIFO, a device or a directory)") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None
        try:
            document = tomlkit.parse(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not UTF-8 text") from None
        except TOMLKitError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}; fix it by hand, then run this again") from None
        return cls(path, document, mode, data)

    # Reading
    def text(self) -> str:
        return tomlkit.dumps(self._document)

    def destinations(self) -> dict[str, dict[str, Any]]:
        """Every [destinations.NAME] table as plain values."""
        return {name: dict(table.unwrap()) for name, table in self._tables("destinations").items()}

    def source(self, name: str) -> dict[str, Any] | None:
        table = self._tables("sources").get(name)
        return None if table is None else dict(table.unwrap())

    # Changing
    def set_destination(self, name: str, values: Mapping[str, TomlValue]) -> None:
        """Make [destinations.NAME] hold exactly `values`: keys already there are replaced in place (comment
        lines inside the table stay), keys not given are removed, new keys are appended."""
        _check_name("destinations", name)
        table = self._table("destinations", name)
        for key in [key for key in table if key not in values]:
            del table[key]
        self._set_keys(table, values)

    def set_source_keys(self, name: str, values: Mapping[str, TomlValue]) -> None:
        """Set `values` on [sources.NAME] (created when missing); its other keys stay."""
        _check_name("sources", name)
        self._set_keys(self._table("sources", name), values)

    def append_source_secret(self, name: str, reference: str) -> bool:
        """Append `reference` to [sources.NAME] secrets unless it is already there; True when it was added.
        Old secrets stay: Dodo keeps accepting the previous one for a day after a rotation."""
        _check_name("sources", name)
        table = self._table("sources", name)
        secrets = table.get("secrets")
        if secrets is None:
            table["secrets"] = _item([reference])
            return True
        if not isinstance(secrets, list):
            raise ConfigError(f'[sources.{name}] secrets: expected a list such as ["env:DODO_WEBHOOK_SECRET"]')
        if reference in secrets:
            return False
        secrets.append(reference)
        return True

    def remove_destination(self, name: str) -> bool:
        """Remove [destinations.NAME] (with the comment lines inside it); True when it was there."""
        parent = self._document.get("destinations")
        if not isinstance(parent, Table) or name not in parent:
            return False
        del parent[name]
        return True

    def save(self) -> None:
        """Replace the file atomically: a temporary file beside it, flushed to disk, then renamed over it. The
        file keeps its mode; a new file gets 0600. Refused (ConfigError, nothing written) when the file changed
        since it was loaded."""
        text = self.text()
        with _folder_lock(self.path):
            try:
                now: bytes | None = _read(self.path)
            except FileNotFoundError:
                now = None
            except (TooLarge, NotRegular):  # replaced meanwhile by something this command never read
                now = b"\0not the file this command read"
            except OSError as exc:
                raise ConfigError(f"{self.path}: cannot read it again before writing: {exc.strerror}") from None
            if now != self._loaded:
                raise ConfigError(
                    f"{self.path} changed since this command read it (another `headrace connect` at the same "
                    "time, or an editor): it was not written. Run the command again; what it already did is "
                    "found done and not repeated"
                )
            write_atomically(self.path, text, NEW_FILE_MODE if self._mode is None else self._mode)
        self._loaded = text.encode("utf-8")
        if self._mode is None:
            self._mode = NEW_FILE_MODE

    # Internals
    def _tables(self, kind: str) -> dict[str, Table]:
        parent = self._document.get(kind)
        if not isinstance(parent, Table):
            return {}
        return {str(name): table for name, table in parent.items() if isinstance(table, Table)}

    def _table(self, kind: str, name: str) -> Table:
        parent = self._document.get(kind)
        if parent is None:
            parent = tomlkit.table(is_super_table=True)
            self._document.add(kind, parent)
        elif not isinstance(parent, Table):
            raise ConfigError(f"{self.path}: `{kind}` is not a table; fix it by hand, then run this again")
        table = parent.get(name)
        if table is None:
            table = tomlkit.table()
            parent.append(name, table)
        elif not isinstance(table, Table):
            raise ConfigError(f"[{kind}.{name}] is not a table; fix it by hand, then run this again")
        return table

    @staticmethod
    def _set_keys(table: Table, values: Mapping[str, TomlValue]) -> None:
        for key, value in values.items():
            table[key] = _item(value)


def _read(path: Path) -> bytes:
    return read_at_most(path, CONFIG_SIZE_LIMIT)


@contextmanager
def _folder_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on the config's folder (a file in it is replaced by a rename, so the file itself cannot
    carry the lock), held while a save compares and writes; another save waits up to LOCK_WAIT seconds."""
    folder = path.parent if str(path.parent) else Path(".")
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"{folder}: another headrace command has been writing a config here for {LOCK_WAIT:g}s; "
                        "nothing was written. Run this again when it is done"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def write_atomically(path: Path, text: str, mode: int) -> None:
    """Write `text` to `path` through a temporary file in the same folder and a rename."""
    folder = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as stream:
            stream.write(text.encode("utf-8"))
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
