"""Compaction of the small files a stream leaves: one file per table per micro-batch.

Usage::

    from medallion.streaming.compaction import Compaction

    compaction = Compaction([bronze, silver, predictions], every=100)
    compaction.after(batch_id)     # compacts after batches 99, 199, ...; returns what it did or None

A query that commits every second adds tens of thousands of files a day to each table it
writes, and every read lists and opens them all. As Databricks' auto compaction does, the
query itself bin-packs them now and then. Compaction changes no rows (its commits carry
``dataChange = false``), so readers and streams reading the tables see nothing new.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from medallion.tables import Table


class Compaction:
    """Compacts ``tables`` after every ``every``-th micro-batch (``every=0``: never)."""

    def __init__(self, tables: Sequence[Table], every: int) -> None:
        self.tables = list(tables)
        self.every = every

    def due(self, batch_id: int) -> bool:
        return self.every > 0 and (batch_id + 1) % self.every == 0

    def after(self, batch_id: int) -> str | None:
        """Compact if ``batch_id`` ends a period; one line saying what was done, else None."""
        if not self.due(batch_id):
            return None
        started = time.monotonic()
        removed = sum(int(table.optimize().get("numFilesRemoved", 0) or 0) for table in self.tables)
        return f"compacted {removed} small files in {len(self.tables)} tables in {time.monotonic() - started:.1f}s"
