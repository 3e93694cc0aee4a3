"""The Delta table layer: one contract (:class:`Table`), two engines.

- ``rs``: embedded delta-rs for the log, Spark for the compute (the default here);
- ``spark``: delta-spark on the JVM (Databricks, or wherever its jars are).

Usage::

    from medallion.tables import Lakehouse

    lake = Lakehouse(settings, spark)          # engine from conf delta.engine (auto|spark|rs)
    events = lake.create("silver", "events", SILVER_EVENTS_SCHEMA, partition_by=["event_date"])
    events.append(df, txn=("ingest", 3))   # exactly once: a replayed txn commits nothing

A streaming query writes exactly once the same way: in ``foreachBatch``, append each
micro-batch with ``txn=(<the query's stable id>, batch_id)``.
"""

from medallion.tables.delta_rs import DeltaRsTable
from medallion.tables.delta_spark import DeltaSparkTable
from medallion.tables.engine import resolve_engine
from medallion.tables.lakehouse import Lakehouse
from medallion.tables.table import Table, register_engine

# Here, not in table.py: the contract knows no engine. Every import of the table layer runs
# this first, so Table.at/create/exists find both.
register_engine("rs", DeltaRsTable)
register_engine("spark", DeltaSparkTable)

__all__ = ["Lakehouse", "Table", "resolve_engine"]
