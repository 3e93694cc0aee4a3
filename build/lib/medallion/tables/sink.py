"""Exactly-once foreachBatch: each micro-batch is written with ``txn=(app_id, batch_id)``.

Usage::

    from medallion.tables import Table, foreach_batch_writer

    sink = Table.at(spark, "/lake/tables/gold/predictions_speed")
    (scored.writeStream
        .foreachBatch(foreach_batch_writer(sink, app_id="score_events"))
        .option("checkpointLocation", "/lake/checkpoints/score_events")
        .start())

After a crash Spark replays the last micro-batch with the same ``batch_id``; the table
already holds that txn, so the replay commits nothing. Use a stable ``app_id`` per query
(its name, or the checkpoint's query id), never a random one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from medallion.errors import MedallionError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from medallion.tables.table import Table

MODES = ("append", "merge")


def foreach_batch_writer(
    table: Table, app_id: str, mode: str = "append", on: str | Sequence[str] | None = None
) -> Callable[[DataFrame, int], None]:
    """A ``foreachBatch`` function appending (or merging on ``on``) each micro-batch once."""
    if mode not in MODES:
        raise MedallionError(f"foreach_batch_writer mode {mode!r}: use one of {', '.join(MODES)}")
    if mode == "merge" and not on:
        raise MedallionError("foreach_batch_writer mode='merge' needs on=<key column(s)>")

    def write(batch: DataFrame, batch_id: int) -> None:
        txn = (app_id, int(batch_id))
        if mode == "append":
            table.append(batch, txn=txn)
        else:
            table.merge(batch, on=on, txn=txn)

    return write
