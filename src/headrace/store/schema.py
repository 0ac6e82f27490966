"""Schema versions: what a binary knows, what a database has, and the one rule that decides between them.

Only `serve`, `worker` and `headrace db migrate` change a database's schema (they migrate forward); every
other command opens it as it is and refuses a schema older than this binary needs. Nothing opens a schema
newer than this binary knows: that database belongs to a newer headrace (or is to be restored from the
backup taken before an upgrade).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from headrace import __version__
from headrace.store.base import StoreError
from headrace.store.queries import migrations

UPGRADE_DOCS = 'docs/operations.md, "Upgrades and rollbacks"'


@dataclass(frozen=True)
class SchemaStatus:
    backend: str
    database: str  # a path, or a PostgreSQL URL without its password
    exists: bool  # False: no database there yet
    current: int  # 0 for a database headrace has not initialised
    known: int  # the newest version this binary has a migration for
    pending: list[str] = field(default_factory=list)  # migration files still to apply, in order
    deployment_id: str | None = None

    @property
    def newer(self) -> bool:
        return self.current > self.known


def known_version(dialect: str) -> int:
    return migrations(dialect)[-1][0]


def pending(dialect: str, applied: set[int]) -> list[tuple[int, str, str]]:
    return [m for m in migrations(dialect) if m[0] not in applied]


def guard(where: str, current: int, known: int, *, migrate: bool) -> None:
    """Raise StoreError unless a database at `current` may be opened by a binary that knows `known`."""
    if current > known:
        raise StoreError(
            f"the database {where} has schema version {current}, newer than this headrace ({__version__}) knows "
            f"({known}): run the headrace release that wrote it, or restore the backup taken before the "
            f"upgrade ({UPGRADE_DOCS})"
        )
    if current < known and not migrate:
        raise StoreError(
            f"the database {where} has schema version {current} and this headrace needs {known}: run "
            "`headrace db migrate -c CONFIG` first (`serve` and `worker` migrate at start)"
        )


def check_live(where: str, current: int, known: int) -> None:
    """For readiness: a running store's schema must be exactly the one this binary was built for."""
    if current != known:
        raise StoreError(f"the database {where} has schema version {current}, this headrace runs {known}")
