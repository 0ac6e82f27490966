"""`headrace db copy`: every row of one database into another, SQLite <-> PostgreSQL.

Events, deliveries (with their job ids and job outcomes), attempts and rejections keep their ids; the target
takes over the source's deployment id, so pending deliveries keep their job ids and new ones continue the
same deployment. PostgreSQL's identity sequences are moved past the copied ids (without that, the first
ingest fails with `Key (id)=(1) already exists`). The target must be empty. Stop every headrace process on
the source first: rows written during the copy would not be copied.
"""

from __future__ import annotations

from collections.abc import Callable

from headrace.store.base import StoreError
from headrace.store.core import Store
from headrace.store.programs import COPIED_TABLES

BATCH = 1000


async def copy_database(
    source: Store, target: Store, progress: Callable[[str, int], None] = lambda table, n: None
) -> dict[str, int]:
    """Copy every row of the open `source` into the open, empty `target`; returns the target's row counts."""
    if source.deployment_id is None:
        raise StoreError(f"the source database {source.where} is not open")
    if any((await target.table_counts()).values()):
        raise StoreError(
            f"the target database {target.where} is not empty: copy into a new, empty database "
            "(headrace never merges two databases' events)"
        )
    expected = await source.table_counts()
    try:
        for table in COPIED_TABLES:
            after, copied = 0, 0
            while batch := await source.export_rows(table, after, BATCH):
                await target.import_rows(table, batch)
                after, copied = int(batch[-1]["id"]), copied + len(batch)
                progress(table, copied)
        counts = await target.finish_import(source.deployment_id)
        while await target.index_pending(BATCH):  # the copied events were queued as they were inserted
            pass
    except Exception as exc:
        raise StoreError(
            f"copy into {target.where} failed ({exc}); it now holds a partial copy: empty it (drop and create "
            "the database again, or delete the file) before trying again"
        ) from exc
    if counts != expected:
        raise StoreError(f"copy into {target.where} is incomplete: {counts} rows, the source has {expected}")
    return counts
