"""The delta-spark engine: Delta Lake's own JVM connector, as on Databricks.

Usage::

    from medallion.tables import Table

    events = Table.at(spark, "dbfs:/lake/tables/silver/events", engine="spark")   # a DeltaSparkTable
    events.append(df, txn=("ingest:events", 3))

Modules: :mod:`.table` (:class:`DeltaSparkTable`), :mod:`.merge` (its merge), :mod:`.errors` (delta-spark's errors as
one-line MedallionErrors, and commit conflicts to retry on), :mod:`.log` (a table's txns,
replayed from its ``_delta_log``).
"""

from medallion.tables.delta_spark.table import DeltaSparkTable

__all__ = ["DeltaSparkTable"]
