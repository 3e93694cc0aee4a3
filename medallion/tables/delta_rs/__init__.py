"""The embedded Delta engine: delta-rs keeps the log, Spark reads and writes the data.

Usage::

    from medallion.tables import Table

    events = Table.at(spark, "/lake/tables/silver/events", engine="rs")   # an DeltaRsTable
    events.append(df, txn=("ingest:events", 3))

Modules: :mod:`.table` (:class:`DeltaRsTable`), :mod:`.files` (staging and committing data
files), :mod:`.merge` (merges, partition replacement), :mod:`.log` (what the Delta log says,
and whether this engine can read the table), :mod:`.staged` (add actions from parquet
footers), :mod:`.datasource` (``spark.read.format("delta")`` without delta-spark's jars).
"""

from medallion.tables.delta_rs.table import DeltaRsTable

__all__ = ["DeltaRsTable"]
