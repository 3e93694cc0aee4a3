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

    t = SparkTable.at(spark, "dbfs:/lake/tables/silver/events")
    t.append(df, txn=("ingest:events", 3))
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import reduce
from typing import TYPE_CHECKING, Any

from medallion.errors import MedallionError, SchemaMismatchError, TableNotFoundError
from medallion.spark import session_conf
from medallion.tables.partition_merge import (
    check_partition,
    partition_text,
    rows_outside_message,
    several_matches_message,
)
from medallion.tables.table import (
    Table,
    Txn,
    _one_line,
    arrow_in_table_order,
    as_utc,
    describe_mismatch,
    schema_differences,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

# DML (merge, delete) takes its txn from session confs; one writer at a time sets them.
_TXN_CONF_LOCK = threading.Lock()
TXN_APP_CONF = "spark.databricks.delta.write.txnAppId"
TXN_VERSION_CONF = "spark.databricks.delta.write.txnVersion"
RETENTION_CHECK_CONF = "spark.databricks.delta.retentionDurationCheck.enabled"


class SparkTable(Table, engine="spark"):
    """A Delta table handled by delta-spark (``DeltaTable`` and ``format("delta")``)."""

    # ------------------------------------------------------------------ construction

    @classmethod
    def _open(cls, spark: SparkSession, path: str) -> SparkTable:
        table = cls(spark, path)
        table._delta()
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
    ) -> SparkTable:
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

    def _delta(self):
        from delta.tables import DeltaTable

        if not DeltaTable.isDeltaTable(self.spark, self.path):
            raise TableNotFoundError(f"no Delta table at {self.path}: no _delta_log with a commit there")
        return DeltaTable.forPath(self.spark, self.path)

    @property
    def schema(self) -> StructType:
        return self._delta().toDF().schema

    @property
    def partition_by(self) -> list[str]:
        return list(self._delta().detail().select("partitionColumns").first()[0])

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
        self._delta()  # refreshes the cached DeltaLog to the latest snapshot
        jvm = self.spark.sparkContext._jvm
        log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(self.spark._jsparkSession, self.path)
        found = log.unsafeVolatileSnapshot().transactions().get(app_id)
        return int(found.get()) if found.isDefined() else None

    # ------------------------------------------------------------------ reads

    def read(self, version: int | None = None, timestamp: str | datetime | None = None) -> DataFrame:
        if version is not None and timestamp is not None:
            raise MedallionError(f"read {self.path}: pass version or timestamp, not both")
        self._delta()
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        if timestamp is not None:
            reader = reader.option("timestampAsOf", as_utc(timestamp).strftime("%Y-%m-%d %H:%M:%S.%f"))
        with _translated(self.path):
            return reader.load(self.path)

    def read_stream(
        self, starting_version: int | None = None, max_files_per_trigger: int | None = None
    ) -> DataFrame:
        self._delta()
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
        if self._already_committed(txn):
            return False
        df = self._conform(df, merge_schema)
        writer = df.write.format("delta").mode("append")
        if txn:
            writer = writer.option("txnAppId", txn[0]).option("txnVersion", int(txn[1]))
        if merge_schema:
            writer = writer.option("mergeSchema", "true")
        with _translated(self.path):
            writer.save(self.path)
        return True

    def overwrite(self, df: DataFrame, where: str | None = None, txn: Txn | None = None) -> bool:
        from delta.exceptions import DeltaConcurrentModificationException

        if self._already_committed(txn):
            return False
        df = self._conform(df, merge_schema=False)

        def attempt() -> bool:
            if self._already_committed(txn):
                return False
            writer = df.write.format("delta").mode("overwrite")
            if where is not None:
                writer = writer.option("replaceWhere", where)
            if txn:
                writer = writer.option("txnAppId", txn[0]).option("txnVersion", int(txn[1]))
            with _translated(self.path):
                writer.save(self.path)
            return True

        return self._retrying("overwrite", attempt, DeltaConcurrentModificationException)

    def merge(
        self,
        source: DataFrame | pa.Table,
        on: str | Sequence[str],
        update: bool = True,
        insert: bool = True,
        update_condition: str | None = None,
        txn: Txn | None = None,
        insert_condition: str | None = None,
        delete_condition: str | None = None,
        partition: Mapping[str, Any] | None = None,
    ) -> dict[str, int]:
        from delta.exceptions import DeltaConcurrentModificationException
        from pyspark.sql import Column
        from pyspark.sql import functions as F

        keys = [on] if isinstance(on, str) else list(on)
        source = self._conform(self._frame(source), merge_schema=False)
        nothing = {"inserted": 0, "updated": 0, "deleted": 0}
        if not (update or insert or delete_condition):
            return nothing
        condition = " AND ".join(f"target.`{k}` = source.`{k}`" for k in keys)
        if partition is not None:
            check_partition(self.path, partition, self.partition_by)
            # Checked as the merge reads the source, not by a pass of its own.
            inside = reduce(Column.__and__, [F.col(k) == F.lit(v) for k, v in partition.items()])
            outside = rows_outside_message(self.path, partition)
            source = source.where(
                F.when(F.coalesce(inside, F.lit(False)), True).otherwise(F.raise_error(F.lit(outside)))
            )
            # In the ON clause, delta-spark prunes the other partitions' files and its
            # conflict detection ignores commits that touched only them.
            condition += "".join(f" AND target.`{k}` = '{partition_text(v)}'" for k, v in partition.items())

        def attempt() -> dict[str, int]:
            if self._already_committed(txn):
                return nothing
            builder = self._delta().alias("target").merge(source.alias("source"), condition)
            if delete_condition:
                builder = builder.whenMatchedDelete(condition=delete_condition)
            if update:
                builder = builder.whenMatchedUpdateAll(condition=update_condition)
            if insert:
                builder = builder.whenNotMatchedInsertAll(condition=insert_condition)
            with self._dml_txn(txn), _translated(self.path):
                try:
                    metrics = builder.execute().first()
                except Exception as exc:
                    if partition is not None and "lie outside partition" in str(exc):
                        raise MedallionError(outside) from None
                    if "multiple source rows matched" in str(exc):
                        raise MedallionError(several_matches_message(self.path, keys)) from None
                    raise
            if metrics is None:
                return nothing
            return {
                "inserted": int(metrics["num_inserted_rows"]),
                "updated": int(metrics["num_updated_rows"]),
                "deleted": int(metrics["num_deleted_rows"]),
            }

        return self._retrying("merge", attempt, DeltaConcurrentModificationException)

    def _frame(self, rows: DataFrame | pa.Table) -> DataFrame:
        """Arrow rows on the driver as a DataFrame (Spark does delta-spark's writes)."""
        import pyarrow as pa

        if isinstance(rows, pa.Table):
            rows = arrow_in_table_order(self.path, self.schema, rows)
            return self.spark.createDataFrame(rows, schema=self.schema)
        return rows

    def delete(self, where: str) -> int:
        from delta.exceptions import DeltaConcurrentModificationException

        self._delta()

        def attempt() -> int:
            with _translated(self.path):
                result = self.spark.sql(f"DELETE FROM delta.`{self.path}` WHERE {where}").first()
            return int(result["num_affected_rows"]) if result is not None else 0

        return self._retrying("delete", attempt, DeltaConcurrentModificationException)

    # ------------------------------------------------------------------ maintenance

    def optimize(self) -> dict[str, Any]:
        from delta.exceptions import DeltaConcurrentModificationException

        def attempt() -> dict[str, Any]:
            row = self._delta().optimize().executeCompaction().first()
            return row["metrics"].asDict(recursive=True) if row is not None else {}

        return self._retrying("optimize", attempt, DeltaConcurrentModificationException)

    def vacuum(self, retention_hours: float = 168, enforce_retention: bool = True) -> list[str]:
        self._delta()
        sql = f"VACUUM delta.`{self.path}` RETAIN {retention_hours} HOURS"
        with self._retention_check(enforce_retention), _translated(self.path):
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
        missing, extra, changed = schema_differences(self.schema, df.schema)
        if changed or ((missing or extra) and not merge_schema):
            raise SchemaMismatchError(describe_mismatch(self.path, missing, extra, changed, "the frame"))
        # Delta resolves columns by name; the table's order keeps the written files tidy.
        ordered = [f"`{f.name}`" for f in self.schema.fields if f.name in df.columns]
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


@contextmanager
def _translated(path: str) -> Iterator[None]:
    """Spark/Delta errors a user can cause, as one-line MedallionErrors naming the table."""
    from pyspark.errors import AnalysisException

    try:
        yield
    except AnalysisException as exc:
        text = str(exc)
        if "DELTA_MISSING_DELTA_TABLE" in text or "is not a Delta table" in text or "PATH_NOT_FOUND" in text:
            raise TableNotFoundError(f"no Delta table at {path}: {_one_line(exc)}") from None
        if "DELTA_REPLACE_WHERE_MISMATCH" in text or "does not conform" in text:
            raise MedallionError(
                f"overwrite of {path}: some rows do not match the predicate: {_one_line(exc)}"
            ) from None
        if (
            "DELTA_FAILED_TO_MERGE_FIELDS" in text
            or "DELTA_SCHEMA" in text
            or "schema mismatch" in text.lower()
        ):
            raise SchemaMismatchError(f"schema mismatch writing {path}: {_one_line(exc)}") from None
        if "DELTA_VERSION" in text or "DELTA_TIMESTAMP" in text:
            raise MedallionError(f"time travel on {path}: {_one_line(exc)}") from None
        raise
