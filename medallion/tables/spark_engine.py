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

import json
import posixpath
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import reduce
from typing import TYPE_CHECKING, Any

from medallion.errors import MedallionError, SchemaMismatchError, TableNotFoundError
from medallion.spark import session_conf
from medallion.tables.partition_merge import (
    MergeClauses,
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
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructType

# DML (merge, delete) takes its txn from session confs; one writer at a time sets them.
_TXN_CONF_LOCK = threading.Lock()
TXN_APP_CONF = "spark.databricks.delta.write.txnAppId"
TXN_VERSION_CONF = "spark.databricks.delta.write.txnVersion"
RETENTION_CHECK_CONF = "spark.databricks.delta.retentionDurationCheck.enabled"
TXN_RETENTION_PROPERTY = "delta.setTransactionRetentionDuration"

# A checkpoint's file in _delta_log (the Delta protocol's names): classic (one file),
# multi-part (part i of n) or V2 (a UUID; its adds may sit in sidecars, but its txn and
# metaData actions are in this file).
_CHECKPOINT_FILE = re.compile(
    r"^(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10})|\.[0-9a-fA-F-]+)?\.(parquet|json)$"
)
# The parts of the log's actions that decide a txn's version: as delta-spark replays them.
_TXN_ACTIONS = (
    "txn struct<appId: string, version: bigint, lastUpdated: bigint>, "
    "metaData struct<configuration: map<string, string>>"
)
_INTERVAL_MS = {
    "week": 7 * 86_400_000,
    "day": 86_400_000,
    "hour": 3_600_000,
    "minute": 60_000,
    "second": 1_000,
    "millisecond": 1,
    "microsecond": 0.001,
}
_MATCHED_ROW = "__medallion_target_row"


class _CommitConflict(Exception):
    """A concurrent commit won (delta-spark's conflict classes share no base class but
    PySparkException): :meth:`Table._retrying` retries on it."""


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
        """Read from the ``_delta_log`` as the Delta protocol defines it (the newest checkpoint,
        then the commits after it): delta-spark has no public API for a table's txns, and
        its DeltaLog class has another package on Databricks."""
        head = self.version()  # also: a missing table is a TableNotFoundError
        found = _newest_txn(self.spark, self.path, app_id, head)
        if found is None:
            return None
        version, last_updated, configuration = found
        retention = configuration.get(TXN_RETENTION_PROPERTY)
        if retention is not None:
            # delta-spark's snapshots drop a txn not updated within this duration.
            cutoff = time.time() * 1000 - _interval_ms(self.path, retention)
            if last_updated is None or last_updated <= cutoff:
                return None
        return version

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

        def attempt() -> bool:
            # Each attempt checks: on a retry, a concurrent replay of the batch may have won.
            if self._already_committed(txn):
                return False
            writer = self._conform(df, merge_schema).write.format("delta").mode("append")
            if txn:
                writer = writer.option("txnAppId", txn[0]).option("txnVersion", int(txn[1]))
            if merge_schema:
                writer = writer.option("mergeSchema", "true")
            with _conflicts(), _translated(self.path):
                writer.save(self.path)
            return True

        # A blind append conflicts only with a commit of the same txn app id (or the metadata).
        return self._retrying("append", attempt, _CommitConflict)

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
                _conflicts(),
                _translated(self.path),
            ):
                writer.save(self.path)
            return True

        return self._retrying("overwrite", attempt, _CommitConflict)

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
        """See :meth:`Table.merge`.

        Without ``txn``, a merge that would change nothing is not run: delta-spark would
        still commit (it rewrites every file holding a matched row, whether or not a clause's
        condition holds, and records even an empty commit under WriteSerializable). One join
        of the source with the target tells; if every source row changes something, whether
        the source is empty does. With ``txn`` the merge commits anyway, to record it.
        """
        from pyspark.sql import Column
        from pyspark.sql import functions as F

        keys = [on] if isinstance(on, str) else list(on)
        source = self._conform(self._frame(source), merge_schema=False)
        nothing = {"inserted": 0, "updated": 0, "deleted": 0}
        if not (update or insert or delete_condition):
            return nothing
        clauses = MergeClauses(update, insert, update_condition, insert_condition, delete_condition)
        condition = " AND ".join(f"target.`{k}` = source.`{k}`" for k in keys)
        outside = None
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
            with self._merge_refusals(keys, outside):
                if txn is None and not self._merge_changes(source, condition, partition, clauses):
                    return nothing
            builder = self._delta().alias("target").merge(source.alias("source"), condition)
            if delete_condition:
                builder = builder.whenMatchedDelete(condition=delete_condition)
            if update:
                builder = builder.whenMatchedUpdateAll(condition=update_condition)
            if insert:
                builder = builder.whenNotMatchedInsertAll(condition=insert_condition)
            with (
                self._dml_txn(txn),
                _conflicts(),
                _translated(self.path),
                self._merge_refusals(keys, outside),
            ):
                metrics = builder.execute().first()
            if metrics is None:
                return nothing
            return {
                "inserted": int(metrics["num_inserted_rows"]),
                "updated": int(metrics["num_updated_rows"]),
                "deleted": int(metrics["num_deleted_rows"]),
            }

        return self._retrying("merge", attempt, _CommitConflict)

    def _merge_changes(
        self, source: DataFrame, condition: str, partition: Mapping[str, Any] | None, clauses: MergeClauses
    ) -> bool:
        """Whether merging ``source`` inserts, updates or deletes a row, or may fail because
        several source rows match one target row (delta-spark then says so)."""
        from pyspark.sql import functions as F

        if (
            clauses.update
            and not clauses.update_condition
            and clauses.insert
            and not clauses.insert_condition
        ):
            # Every source row is inserted or updates (or deletes) its match.
            return not source.isEmpty()
        target = self._delta().toDF()
        for column, value in (partition or {}).items():
            target = target.where(F.col(column) == F.lit(value))
        target = target.withColumn(_MATCHED_ROW, F.monotonically_increasing_id())
        joined = source.alias("source").join(target.alias("target"), F.expr(condition), "left")
        row = F.col(f"target.{_MATCHED_ROW}")
        matched = row.isNotNull()
        deleted = _holds(clauses.delete_condition, default=False)
        updated = F.lit(clauses.update) & _holds(clauses.update_condition, default=True)
        inserted = F.lit(clauses.insert) & _holds(clauses.insert_condition, default=True)
        changes = F.when(matched, deleted | updated).otherwise(inserted)
        found = joined.agg(
            F.max(changes.cast("int")).alias("changes"),
            (F.count(row) - F.count_distinct(row)).alias("repeated_matches"),
        ).first()
        return bool(found["changes"]) or bool(found["repeated_matches"])

    @contextmanager
    def _merge_refusals(self, keys: Sequence[str], outside: str | None) -> Iterator[None]:
        """A source that breaks a merge rule, as the one-line error the embedded engine raises."""
        try:
            yield
        except Exception as exc:
            if outside is not None and "lie outside partition" in str(exc):
                raise MedallionError(outside) from None
            if "multiple source rows matched" in str(exc):
                raise MedallionError(several_matches_message(self.path, keys)) from None
            raise

    def _frame(self, rows: DataFrame | pa.Table) -> DataFrame:
        """Arrow rows on the driver as a DataFrame (Spark does delta-spark's writes)."""
        import pyarrow as pa

        if isinstance(rows, pa.Table):
            rows = arrow_in_table_order(self.path, self.schema, rows)
            return self.spark.createDataFrame(rows, schema=self.schema)
        return rows

    def delete(self, where: str) -> int:
        self._delta()

        def attempt() -> int:
            with _conflicts(), _translated(self.path):
                result = self.spark.sql(f"DELETE FROM delta.`{self.path}` WHERE {where}").first()
            return int(result["num_affected_rows"]) if result is not None else 0

        return self._retrying("delete", attempt, _CommitConflict)

    # ------------------------------------------------------------------ maintenance

    def optimize(self) -> dict[str, Any]:
        def attempt() -> dict[str, Any]:
            with _conflicts():
                row = self._delta().optimize().executeCompaction().first()
            return row["metrics"].asDict(recursive=True) if row is not None else {}

        return self._retrying("optimize", attempt, _CommitConflict)

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
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import AnalysisException
    from pyspark.errors.exceptions.captured import CapturedException

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
        if "DELTA_TIMESTAMP_EARLIER_THAN_COMMIT_RETENTION" in text:
            # Worded as the embedded engine words it: one message whichever engine reads.
            raise MedallionError(
                f"{path} has no version at or before that timestamp: {_one_line(exc)}"
            ) from None
        if "DELTA_VERSION" in text or "DELTA_TIMESTAMP" in text:
            raise MedallionError(f"time travel on {path}: {_one_line(exc)}") from None
        raise
    except (CapturedException, Py4JJavaError) as exc:
        # A constraint is checked as the write job runs: delta-spark's error reaches Python
        # as the JVM exception itself (pyspark converts only Spark's own classes).
        refused = _constraint_violation(path, _messages(exc))
        if refused is None:
            raise
        raise refused from None


def _messages(exc: BaseException) -> str:
    """The messages of a JVM error and of its causes, without the stack traces."""
    from py4j.protocol import Py4JJavaError

    if not isinstance(exc, Py4JJavaError):
        return str(exc)
    messages, cause = [], exc.java_exception
    while cause is not None and len(messages) < 10:
        messages.append(str(cause.getMessage()))
        cause = cause.getCause()
    return "\n".join(messages)


def _constraint_violation(path: str, text: str) -> MedallionError | None:
    """The one-line error for rows a NOT NULL or CHECK constraint refuses, else None."""
    columns = re.findall(r"NOT NULL constraint violated for column: (.+?)\.?$", text, flags=re.MULTILINE)
    if "DELTA_NOT_NULL_CONSTRAINT_VIOLATED" in text and columns:
        # Worded as the embedded engine words it (which counts the nulls, too).
        found = ", ".join(dict.fromkeys(columns))
        return SchemaMismatchError(
            f"NOT NULL column(s) of {path} would get nulls: {found}; fill or filter them"
        )
    if "DELTA_VIOLATE_CONSTRAINT_WITH_VALUES" in text:
        return MedallionError(f"a CHECK constraint of {path} refuses rows: {text.strip().splitlines()[0]}")
    return None


def _conflict_classes() -> tuple[type[BaseException], ...]:
    """delta-spark's concurrent-modification exceptions: another commit won the version."""
    from delta import exceptions as delta

    return (
        delta.ConcurrentAppendException,
        delta.ConcurrentDeleteDeleteException,
        delta.ConcurrentDeleteReadException,
        delta.ConcurrentTransactionException,
        delta.ConcurrentWriteException,
        delta.DeltaConcurrentModificationException,
        delta.MetadataChangedException,
        delta.ProtocolChangedException,
    )


@contextmanager
def _conflicts() -> Iterator[None]:
    """delta-spark's commit conflicts as :class:`_CommitConflict`, which writes retry on."""
    try:
        yield
    except _conflict_classes() as exc:
        raise _CommitConflict(_one_line(exc)) from exc


def _holds(condition: str | None, default: bool) -> Column:
    """A merge clause's SQL condition as a column (a null result does not hold)."""
    from pyspark.sql import functions as F

    return F.lit(default) if condition is None else F.coalesce(F.expr(condition), F.lit(False))


def _newest_txn(
    spark: SparkSession, path: str, app_id: str, head: int
) -> tuple[int, int | None, dict[str, str]] | None:
    """``(version, lastUpdated, table configuration)`` of ``app_id``'s txn as of version
    ``head``, replaying the log as delta-spark does: the newest txn and metaData win."""
    from pyspark.sql import functions as F

    checkpoint, commits = _log_segment(spark, path, head)
    log = posixpath.join(path, "_delta_log")
    parts = []
    if checkpoint:
        version, files = checkpoint
        reader = spark.read.schema(_TXN_ACTIONS)
        paths = [posixpath.join(log, name) for name in files]
        read = reader.json(paths) if files[0].endswith(".json") else reader.parquet(*paths)
        parts.append(read.withColumn("commit", F.lit(version).cast("long")))
    if commits:
        read = spark.read.schema(_TXN_ACTIONS).json([posixpath.join(log, name) for name in commits])
        parts.append(
            read.withColumn("commit", F.regexp_extract("_metadata.file_path", r"(\d{20})\.json$", 1))
        )
    rows = (
        reduce(lambda a, b: a.unionByName(b), parts)
        .where((F.col("txn.appId") == F.lit(app_id)) | F.col("metaData").isNotNull())
        .select(
            F.col("commit").cast("long").alias("commit"),
            "txn.version",
            "txn.lastUpdated",
            F.col("metaData").isNotNull().alias("is_metadata"),
            "metaData.configuration",
        )
        .collect()
    )
    txns = [r for r in rows if not r["is_metadata"]]
    if not txns:
        return None
    txn = max(txns, key=lambda r: r["commit"])
    metadata = max((r for r in rows if r["is_metadata"]), key=lambda r: r["commit"], default=None)
    configuration = (metadata["configuration"] if metadata else None) or {}
    return int(txn["version"]), txn["lastUpdated"], configuration


def _log_segment(spark: SparkSession, path: str, head: int) -> tuple[tuple[int, list[str]] | None, list[str]]:
    """``((version, files) of the newest complete checkpoint or None, commit files after it up to
    version ``head``)``: names in ``_delta_log``, found through Hadoop's FileSystem (Spark's).

    Only the checkpoint that ``_last_checkpoint`` points to is listed: a long log has
    thousands of files, and py4j fetches their names one call at a time.
    """
    jvm = spark.sparkContext._jvm
    log = jvm.org.apache.hadoop.fs.Path(posixpath.join(path, "_delta_log"))
    fs = log.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    hint = _last_checkpoint(jvm, fs, log)
    checkpoint = None
    if hint is not None:
        found = fs.globStatus(jvm.org.apache.hadoop.fs.Path(log, f"{hint:020d}.checkpoint*"))
        checkpoint = _newest_checkpoint([s.getPath().getName() for s in found or []])
    if checkpoint is None:  # no hint (a young log), or a stale one: list it all
        checkpoint = _newest_checkpoint([s.getPath().getName() for s in fs.listStatus(log)])
    after = checkpoint[0] if checkpoint else -1
    return checkpoint, [f"{version:020d}.json" for version in range(after + 1, head + 1)]


def _last_checkpoint(jvm: Any, fs: Any, log: Any) -> int | None:
    """The version ``_delta_log/_last_checkpoint`` names, or None (absent or being replaced)."""
    from py4j.protocol import Py4JJavaError

    try:
        stream = fs.open(jvm.org.apache.hadoop.fs.Path(log, "_last_checkpoint"))
        try:
            text = jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
        finally:
            stream.close()
        return int(json.loads(text)["version"])
    except (Py4JJavaError, ValueError, KeyError, TypeError):  # no checkpoint yet, or mid-rewrite
        return None


def _newest_checkpoint(names: Sequence[str]) -> tuple[int, list[str]] | None:
    """The newest checkpoint all of whose parts are there: a single-file one (classic or V2),
    else the parts of a multi-part one."""
    found: dict[int, dict[int, set[str]]] = {}  # version -> parts in all (1: single) -> names
    for name in names:
        match = _CHECKPOINT_FILE.match(name)
        if match:
            total = int(match.group(3) or 1)
            found.setdefault(int(match.group(1)), {}).setdefault(total, set()).add(name)
    for version in sorted(found, reverse=True):
        for total, files in sorted(found[version].items()):
            if len(files) >= total:  # single-file ones (classic and V2) are each complete
                return version, sorted(files)[:total]
    return None


def _interval_ms(path: str, text: str) -> float:
    """A Delta interval property (``'2 weeks'``, ``'interval 7 days'``) in milliseconds,
    as delta-spark reads it (months and years are refused there)."""
    cleaned = text.strip().lower().removeprefix("interval").strip()
    pairs = re.findall(r"(-?\d+(?:\.\d+)?)\s*([a-z]+?)s?\b", cleaned)
    leftover = re.sub(r"-?\d+(?:\.\d+)?\s*[a-z]+", "", cleaned).strip()
    if not pairs or leftover or any(unit not in _INTERVAL_MS for _, unit in pairs):
        raise MedallionError(
            f"{path}: {TXN_RETENTION_PROPERTY}={text!r} is not an interval such as '2 weeks'"
        )
    return sum(float(amount) * _INTERVAL_MS[unit] for amount, unit in pairs)
