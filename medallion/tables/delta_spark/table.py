"""The delta-spark engine: Delta Lake's own JVM connector, as on Databricks.

Needs delta-spark's jars on the classpath (``io.delta:delta-spark_2.13:4.0.x`` in
``spark.jars.packages`` or ``spark.jars``) and the Delta session extension and catalog,
which :func:`medallion.spark.get_spark` configures. Every line is the standard idiom::

    DeltaTable.forPath(spark, path)
    df.write.format("delta").mode("append").option("txnAppId", app).option("txnVersion", v).save(path)
    df.write.format("delta").mode("overwrite").option("replaceWhere", where).save(path)
    target.alias("target").merge(source.alias("source"), cond).whenMatchedUpdateAll().whenNotMatchedInsertAll()
    spark.readStream.format("delta").option("skipChangeCommits", "true").load(path)

Example::

    t = DeltaSparkTable.at(spark, "dbfs:/lake/tables/silver/events")
    t.append(df, txn=("ingest:events", 3))

Errors are translated in :mod:`medallion.tables.delta_spark.errors`; txns are read from the
log in :mod:`medallion.tables.delta_spark.log`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from medallion.errors import SchemaMismatchError, TableNotFoundError
from medallion.spark import session_conf
from medallion.tables.checks import arrow_in_table_order, as_utc, describe_mismatch, schema_differences
from medallion.tables.delta_spark.errors import CommitConflict, conflicts, translated
from medallion.tables.delta_spark.log import TXN_RETENTION_PROPERTY, interval_ms, newest_txn
from medallion.tables.delta_spark.merge import Merges
from medallion.tables.table import Table, Txn

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

# DML (merge, delete) takes its txn from session confs; one writer at a time sets them.
_TXN_CONF_LOCK = threading.Lock()
TXN_APP_CONF = "spark.databricks.delta.write.txnAppId"
TXN_VERSION_CONF = "spark.databricks.delta.write.txnVersion"
RETENTION_CHECK_CONF = "spark.databricks.delta.retentionDurationCheck.enabled"


class DeltaSparkTable(Merges, Table):
    """A Delta table handled by delta-spark (``DeltaTable`` and ``format("delta")``)."""

    engine = "spark"

    # ------------------------------------------------------------------ construction

    @classmethod
    def _open(cls, spark: SparkSession, path: str) -> DeltaSparkTable:
        table = cls(spark, path)
        table._require_table()
        return table

    @classmethod
    def _exists(cls, spark: SparkSession, path: str) -> bool:
        from delta.tables import DeltaTable

        return DeltaTable.isDeltaTable(spark, cls(spark, path).path)

    @classmethod
    def _create(
        cls,
        spark: SparkSession,
        path: str,
        schema: StructType,
        partition_by: list[str],
        properties: dict[str, str],
    ) -> DeltaSparkTable:
        from delta.tables import DeltaTable

        table = cls(spark, path)
        builder = DeltaTable.createIfNotExists(spark).location(table.path).addColumns(schema)
        if partition_by:
            builder = builder.partitionedBy(*partition_by)
        for key, value in properties.items():
            builder = builder.property(key, value)
        builder.execute()
        if table.partition_by != partition_by:
            raise SchemaMismatchError(
                f"{table.path} is partitioned by {table.partition_by or 'nothing'}, not {partition_by or 'nothing'}"
            )
        return table

    # ------------------------------------------------------------------ metadata

    def _require_table(self) -> None:
        """TableNotFoundError unless a Delta table is at ``path``: a read, a DESCRIBE or a
        DELETE would otherwise fail with Spark's own trace, or read a plain folder."""
        from delta.tables import DeltaTable

        if not DeltaTable.isDeltaTable(self.spark, self.path):
            raise TableNotFoundError(f"no Delta table at {self.path}: no _delta_log with a commit there")

    def _delta(self):
        from delta.tables import DeltaTable

        self._require_table()
        return DeltaTable.forPath(self.spark, self.path)

    @property
    def schema(self) -> StructType:
        return self._delta().toDF().schema

    @property
    def partition_by(self) -> list[str]:
        # DESCRIBE TABLE reads the snapshot's metadata only; DeltaTable.detail() also sums
        # every file of the table (numFiles, sizeInBytes), a Spark job over the whole log.
        self._require_table()
        with translated(self.path):
            rows = self.spark.sql(f"DESCRIBE TABLE delta.`{self.path}`").collect()
        names = [row[0] or "" for row in rows]
        if "# Partition Information" not in names:
            return []
        columns = []
        for name in names[names.index("# Partition Information") + 1 :]:
            if not name or (name.startswith("#") and columns):
                break
            if not name.startswith("#"):  # the section's "# col_name" header
                columns.append(name)
        return columns

    def version(self) -> int:
        return int(self._delta().history(1).select("version").first()[0])

    def history(self) -> list[dict[str, Any]]:
        rows = (
            self._delta()
            .history()
            .select("version", "timestamp", "operation", "operationParameters", "operationMetrics")
            .collect()
        )
        entries = []
        for row in rows:
            entry = row.asDict(recursive=True)
            # The session time zone is UTC (medallion.spark), so the naive value is UTC.
            entry["timestamp"] = as_utc(entry["timestamp"])
            entries.append(entry)
        return entries

    def last_txn_version(self, app_id: str) -> int | None:
        """Read from the ``_delta_log`` as the Delta protocol defines it (the newest checkpoint,
        then the commits after it): delta-spark has no public API for a table's txns, and
        its DeltaLog class has another package on Databricks."""
        found = newest_txn(self.spark, self.path, app_id)  # a missing table: TableNotFoundError
        if found is None:
            return None
        version, last_updated, configuration = found
        retention = configuration.get(TXN_RETENTION_PROPERTY)
        if retention is not None:
            # delta-spark's snapshots drop a txn not updated within this duration.
            cutoff = time.time() * 1000 - interval_ms(self.path, retention)
            if last_updated is None or last_updated <= cutoff:
                return None
        return version

    # ------------------------------------------------------------------ reads

    def read(self, version: int | None = None, timestamp: str | datetime | None = None) -> DataFrame:
        if version is not None and timestamp is not None:
            raise ValueError(f"read {self.path}: pass version or timestamp, not both")
        self._require_table()
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        if timestamp is not None:
            reader = reader.option("timestampAsOf", as_utc(timestamp).strftime("%Y-%m-%d %H:%M:%S.%f"))
        with translated(self.path):
            return reader.load(self.path)

    def read_stream(
        self, starting_version: int | None = None, max_files_per_trigger: int | None = None
    ) -> DataFrame:
        self._require_table()
        reader = self.spark.readStream.format("delta").option("skipChangeCommits", "true")
        if starting_version is not None:
            reader = reader.option("startingVersion", starting_version)
        if max_files_per_trigger is not None:
            reader = reader.option("maxFilesPerTrigger", max_files_per_trigger)
        return reader.load(self.path)

    # ------------------------------------------------------------------ writes

    def append(
        self,
        df: DataFrame | pa.Table,
        txn: Txn | None = None,
        merge_schema: bool = False,
        expected_rows: int | None = None,  # delta-spark's write has no cheaper small-frame path
    ) -> bool:
        df = self._frame(df)

        def attempt() -> bool:
            # Each attempt checks: on a retry, a concurrent replay of the batch may have won.
            if self._already_committed(txn):
                return False
            writer = self._conform(df, merge_schema).write.format("delta").mode("append")
            if txn:
                writer = writer.option("txnAppId", txn[0]).option("txnVersion", int(txn[1]))
            if merge_schema:
                writer = writer.option("mergeSchema", "true")
            with conflicts(), translated(self.path):
                writer.save(self.path)
            return True

        # A blind append conflicts only with a commit of the same txn app id (or the metadata).
        return self._retrying("append", attempt, CommitConflict)

    def overwrite(self, df: DataFrame, where: str | None = None, txn: Txn | None = None) -> bool:
        def attempt() -> bool:
            if self._already_committed(txn):
                return False
            writer = self._conform(df, merge_schema=False).write.format("delta").mode("overwrite")
            if where is not None:
                writer = writer.option("replaceWhere", where)
            if txn:
                writer = writer.option("txnAppId", txn[0]).option("txnVersion", int(txn[1]))
            with (
                session_conf(self.spark, self._replace_where_conf(where)),
                conflicts(),
                translated(self.path),
            ):
                writer.save(self.path)
            return True

        return self._retrying("overwrite", attempt, CommitConflict)

    def _replace_where_conf(self, where: str | None) -> dict[str, str]:
        """A predicate on partition columns only takes Delta's partition replaceWhere: the
        data-column path analyses the frame again and fails on one that carries an
        observation (INTERNAL_ERROR "nullable on unresolved object", delta-spark 4.4)."""
        if where is None:
            return {}
        partitions = set(self.partition_by)
        names = [f.name for f in self.schema.fields if f.name not in partitions]
        if any(re.search(rf"(?<!\w){re.escape(name)}(?!\w)", where) for name in names):
            return {}
        return {"spark.databricks.delta.replaceWhere.dataColumns.enabled": "false"}

    def _frame(self, rows: DataFrame | pa.Table) -> DataFrame:
        """Arrow rows on the driver as a DataFrame (Spark does delta-spark's writes)."""
        import pyarrow as pa

        if isinstance(rows, pa.Table):
            schema = self.schema
            return self.spark.createDataFrame(arrow_in_table_order(self.path, schema, rows), schema=schema)
        return rows

    def delete(self, where: str) -> int:
        self._require_table()

        def attempt() -> int:
            with conflicts(), translated(self.path):
                result = self.spark.sql(f"DELETE FROM delta.`{self.path}` WHERE {where}").first()
            return int(result["num_affected_rows"]) if result is not None else 0

        return self._retrying("delete", attempt, CommitConflict)

    # ------------------------------------------------------------------ maintenance

    def optimize(self) -> dict[str, Any]:
        def attempt() -> dict[str, Any]:
            with conflicts():
                row = self._delta().optimize().executeCompaction().first()
            return row["metrics"].asDict(recursive=True) if row is not None else {}

        return self._retrying("optimize", attempt, CommitConflict)

    def vacuum(self, retention_hours: float = 168, enforce_retention: bool = True) -> list[str]:
        self._require_table()
        sql = f"VACUUM delta.`{self.path}` RETAIN {retention_hours} HOURS"
        with self._retention_check(enforce_retention), translated(self.path):
            doomed = [row[0] for row in self.spark.sql(sql + " DRY RUN").collect()]
            self.spark.sql(sql).collect()
        return doomed

    # ------------------------------------------------------------------ internals

    def _already_committed(self, txn: Txn | None) -> bool:
        if txn is None:
            return False
        done = self.last_txn_version(txn[0])
        return done is not None and done >= int(txn[1])

    def _conform(self, df: DataFrame, merge_schema: bool) -> DataFrame:
        schema = self.schema  # one snapshot for the check and the order
        missing, extra, changed = schema_differences(schema, df.schema)
        if changed or ((missing or extra) and not merge_schema):
            raise SchemaMismatchError(describe_mismatch(self.path, missing, extra, changed, "the frame"))
        # Delta resolves columns by name; the table's order keeps the written files tidy.
        ordered = [f"`{f.name}`" for f in schema.fields if f.name in df.columns]
        return df.select(*ordered, *[f"`{name}`" for name in extra])

    @contextmanager
    def _dml_txn(self, txn: Txn | None) -> Iterator[None]:
        if txn is None:
            yield
            return
        with _TXN_CONF_LOCK:
            self.spark.conf.set(TXN_APP_CONF, txn[0])
            self.spark.conf.set(TXN_VERSION_CONF, str(int(txn[1])))
            try:
                yield
            finally:
                self.spark.conf.unset(TXN_APP_CONF)
                self.spark.conf.unset(TXN_VERSION_CONF)

    @contextmanager
    def _retention_check(self, enforce: bool) -> Iterator[None]:
        if enforce:
            yield
            return
        with session_conf(self.spark, {RETENTION_CHECK_CONF: "false"}):
            yield
