"""The Delta table layer: one contract (:class:`Table`), two engines.

- ``rs``: embedded delta-rs for the log, Spark for the compute (the default here);
- ``spark``: delta-spark on the JVM (Databricks, or wherever its jars are).

Usage::

    from medallion.tables import Lakehouse, foreach_batch_writer

    lake = Lakehouse(settings, spark)          # engine from conf delta.engine (auto|spark|rs)
    events = lake.create("silver", "events", SILVER_EVENTS_SCHEMA, partition_by=["event_date"])
    events.append(df, txn=("ingest", 3))
"""

from medallion.tables.delta_rs import RsTable
from medallion.tables.delta_spark import SparkTable
from medallion.tables.engine import resolve_engine
from medallion.tables.lakehouse import Lakehouse
from medallion.tables.sink import foreach_batch_writer
from medallion.tables.table import Table, register_engine

# Here, not in table.py: the contract knows no engine. Every import of the table layer runs
# this first, so Table.at/create/exists find both.
register_engine("rs", RsTable)
register_engine("spark", SparkTable)

__all__ = ["Lakehouse", "Table", "foreach_batch_writer", "resolve_engine"]
