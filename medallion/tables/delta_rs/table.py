"""The embedded engine: Delta log by delta-rs (the ``deltalake`` package), compute by Spark.

Writes: executors write parquet (``df.write.parquet``) into ``<table>/staging-<uuid>/``,
the driver moves the files next to the table's other files, reads their parquet footers
(numRecords, min/max, nullCount: no data is read) and commits every add action in ONE
delta-rs transaction (:mod:`medallion.tables.delta_rs.files`). The staging folder is
deliberately not ``_``-prefixed: if the driver dies between the write and the commit,
``vacuum`` finds and deletes the orphans. An append whose caller says it is small
(``expected_rows``, e.g. a streaming micro-batch) is collected as Arrow and written and
committed by delta-rs: no Spark write job.

Reads: Spark gets the snapshot's file list with ``basePath`` set to the table root, so
partition columns come back from the paths. The directory itself is never read: it also
holds files that earlier versions removed. Tables this can misread (deletion vectors in
use, column mapping, reader features Spark's parquet reader knows nothing of) are refused
when opened, read or written, with a MedallionError that says to use ``delta.engine=spark``
(:func:`medallion.tables.delta_rs.log.refuse_unreadable`).

Example::

    from medallion.tables import Table

    t = Table.create(spark, "/lake/tables/gold/features", schema, partition_by=["event_date"])
    t.append(df, txn=("features-nightly", 20261120))
    t.overwrite(day, where="event_date = DATE'2026-11-20'")
    t.read(version=1).count()

Memory: reads, appends, overwrites and deletes never collect table data to the driver.
:meth:`DeltaRsTable.merge` does: its source goes to the driver as one Arrow table (bounded by
``spark.driver.maxResultSize``, 1 GiB by default; budget about twice the source's Arrow
size in driver memory) and delta-rs rewrites the touched target files in the driver
process. Merge micro-batches that way. A merge confined to one partition
(``partition=...``, e.g. a day of serving) is executed by Spark instead
(:mod:`medallion.tables.delta_rs.merge`): the partition is rewritten, nothing collected.
For bulk replacement use ``overwrite(where=...)``, which Spark executes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from medallion.errors import MedallionError, SchemaMismatchError
from medallion.tables.checks import arrow_in_table_order, as_utc
from medallion.tables.delta_rs.files import DataFiles
from medallion.tables.delta_rs.log import partition_columns, refuse_unreadable, spark_schema, translated
from medallion.tables.delta_rs.merge import Merges
from medallion.tables.table import Table, Txn

if TYPE_CHECKING:
    import pyarrow as pa
    from deltalake import DeltaTable
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

# A Spark write job has a fixed cost however few its rows (job, commit protocol, renames):
# an append known to be at most this small is collected and written by delta-rs instead
# (docs/performance.md, "Where the code's thresholds come from").
DRIVER_WRITE_ROWS = 50_000


# delta-rs checkpoints every 100 commits, Delta Lake every 10. Every call here reads the log,
# and replaying tens of JSON commits costs many times a checkpoint's read, while a
# micro-batch reads about a dozen logs; a checkpoint adds little to its commit.
LOG_DEFAULTS = {"delta.checkpointInterval": "10"}


class DeltaRsTable(Merges, DataFiles, Table):
    """A Delta table handled by delta-rs, with Spark doing the reading and writing.

    Its data files are scanned, staged and committed by :class:`DataFiles`; merges and
    partition replacement are :class:`Merges`. Both parts work on the snapshot this class
    opens (:meth:`_delta`), which refuses a table the engine would misread.

    Example::

        t = DeltaRsTable.at(spark, "/lake/tables/bronze/events")
        t.append(df, txn=("ingest:events", 3))
        t.last_txn_version("ingest:events")   # 3
    """

    engine = "rs"
    replaces_partitions = True

    # ------------------------------------------------------------------ construction

    @classmethod
    def _open(cls, spark: SparkSession, path: str) -> DeltaRsTable:
        table = cls(spark, path)
        table._delta()  # raises TableNotFoundError naming the path
        return table

    @classmethod
    def _exists(cls, spark: SparkSession, path: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(cls(spark, path).path)

    @classmethod
    def _create(
        cls,
        spark: SparkSession,
        path: str,
        schema: StructType,
        partition_by: list[str],
        properties: dict[str, str],
    ) -> DeltaRsTable:
        from deltalake import DeltaTable, Schema

        table = cls(spark, path)
        ntz = [f.name for f in schema.fields if f.dataType.typeName() == "timestamp_ntz"]
        if ntz:
            raise SchemaMismatchError(
                f"column(s) {', '.join(ntz)} of {table.path} are timestamp_ntz: use TimestampType (UTC) so every "
                "Delta reader sees the same instant"
            )
        if not DeltaTable.is_deltatable(table.path):
            with translated(table.path):
                # "ignore": a concurrent creator may win the race; its table is then checked below.
                DeltaTable.create(
                    table.path,
                    Schema.from_json(schema.json()),
                    mode="ignore",
                    partition_by=partition_by or None,
                    configuration={**LOG_DEFAULTS, **properties},
                )
        if table.partition_by != partition_by:
            raise SchemaMismatchError(
                f"{table.path} is partitioned by {table.partition_by or 'nothing'}, not {partition_by or 'nothing'}"
            )
        return table

    # ------------------------------------------------------------------ metadata

    def _delta(self, version: int | None = None) -> DeltaTable:
        from deltalake import DeltaTable

        with translated(self.path):
            dt = DeltaTable(self.path, version=version)
        # Every open, read, stream and write starts here: a table this engine would misread
        # is refused before any of them touches its files.
        refuse_unreadable(dt, self.path)
        return dt

    @property
    def schema(self) -> StructType:
        return spark_schema(self._delta())

    @property
    def partition_by(self) -> list[str]:
        return partition_columns(self._delta())

    def version(self) -> int:
        return self._delta().version()

    def last_txn_version(self, app_id: str) -> int | None:
        return self._delta().transaction_version(app_id)

    def history(self) -> list[dict[str, Any]]:
        entries = []
        for entry in self._delta().history():
            entry = dict(entry)
            if isinstance(entry.get("timestamp"), int):
                entry["timestamp"] = datetime.fromtimestamp(entry["timestamp"] / 1000, UTC)
            entries.append(entry)
        return sorted(entries, key=lambda e: e.get("version", -1), reverse=True)

    # ------------------------------------------------------------------ reads

    def read(self, version: int | None = None, timestamp: str | datetime | None = None) -> DataFrame:
        if version is not None and timestamp is not None:
            raise ValueError(f"read {self.path}: pass version or timestamp, not both")
        dt = self._delta()
        if timestamp is not None:
            when = as_utc(timestamp)
            # By the commit timestamps history() reports. delta-rs would go by the commit
            # files' modification times, which trail them: reading as of a commit's own
            # timestamp could give the version before it.
            versions = [e["version"] for e in self.history() if e["timestamp"] <= when]
            if not versions:
                raise MedallionError(f"{self.path} has no version at or before {when.isoformat()}")
            with translated(self.path):
                dt.load_as_version(max(versions))
        elif version is not None:
            latest = dt.version()
            if not 0 <= version <= latest:
                raise MedallionError(
                    f"{self.path} has versions 0..{latest}; version {version} does not exist"
                )
            with translated(self.path):
                dt.load_as_version(version)
        refuse_unreadable(dt, self.path)  # time travel: an old version may use what the latest does not
        return self._scan(dt, dt.file_uris())

    def read_between(self, column: str, low: Any, high: Any) -> DataFrame:
        import posixpath

        import pyarrow as pa
        from pyspark.sql import functions as F

        from medallion.tables.arrow import may_overlap

        dt = self._delta()
        # Spark would open every file to read its footer's bounds: the log has them already.
        actions = pa.table(dt.get_add_actions(flatten=True))
        meets = may_overlap(_bounds(actions, [column]), column, low, high)
        paths = actions.column("path").to_pylist() if actions.num_rows else []
        files = [posixpath.join(self.path, path) for path, keep in zip(paths, meets, strict=True) if keep]
        return self._scan(dt, files).where(F.col(column).between(F.lit(low), F.lit(high)))

    def file_statistics(self, columns: Sequence[str]) -> pa.Table:
        import pyarrow as pa

        return _bounds(pa.table(self._delta().get_add_actions(flatten=True)), columns)

    def read_stream(
        self, starting_version: int | None = None, max_files_per_trigger: int | None = None
    ) -> DataFrame:
        from medallion.tables.delta_rs.datasource import register

        self._delta()  # a missing table fails here, not in a Python worker
        reader = self.spark.readStream.format(register(self.spark))
        if starting_version is not None:
            reader = reader.option("startingVersion", str(starting_version))
        if max_files_per_trigger is not None:
            reader = reader.option("maxFilesPerTrigger", str(max_files_per_trigger))
        return reader.load(self.path)

    # ------------------------------------------------------------------ writes

    def append(
        self,
        df: DataFrame | pa.Table,
        txn: Txn | None = None,
        merge_schema: bool = False,
        expected_rows: int | None = None,
    ) -> bool:
        import pyarrow as pa
        from deltalake.exceptions import CommitFailedError

        # One snapshot answers the replay check and the schema; each commit loads its own.
        dt = self._delta()
        if self._already_committed(dt, txn):
            return False
        schema = spark_schema(dt)
        if isinstance(df, pa.Table):
            return self._append_from_driver(arrow_in_table_order(self.path, schema, df), txn, schema)
        df = self._conform(df, merge_schema, schema)
        if expected_rows is not None and expected_rows <= DRIVER_WRITE_ROWS:
            # Evolving the schema made a new version: its schema is the one to check against.
            return self._append_from_driver(df.toArrow(), txn, self.schema if merge_schema else schema)
        staged = self._stage(df)

        def attempt() -> bool:
            dt = self._delta()
            if self._already_committed(dt, txn):
                # A concurrent replay of the same batch won: ours must not land too.
                self._discard(staged)
                return False
            self._commit(
                dt,
                [f.add_action() for f in staged],
                "append",
                txn,
                {"writeOperation": "APPEND"},
                retries=None,
            )
            return True

        return self._committing("append", attempt, CommitFailedError, staged)

    def _append_from_driver(self, rows: pa.Table, txn: Txn | None, schema: StructType) -> bool:
        """Append rows already on the driver (``schema``: the table's): delta-rs writes the
        files and commits them."""
        from deltalake import write_deltalake
        from deltalake.exceptions import CommitFailedError
        from deltalake.transaction import CommitProperties, Transaction

        nulls = {
            field.name: rows.column(field.name).null_count
            for field in schema.fields
            if not field.nullable and rows.column(field.name).null_count
        }
        self._refuse_nulls(nulls)

        def attempt() -> bool:
            dt = self._delta()
            if self._already_committed(dt, txn):
                return False  # a concurrent replay of the same batch won: ours must not land too
            if rows.num_rows == 0:
                # Nothing to write, but the txn is recorded, as an append of an empty frame does.
                self._commit(dt, [], "append", txn, {"writeOperation": "APPEND"}, retries=None)
                return True
            apps = [Transaction(txn[0], int(txn[1]))] if txn else None
            params = {"writeOperation": "APPEND", "partitionBy": json.dumps(partition_columns(dt))}
            with translated(self.path):
                write_deltalake(
                    dt,
                    rows,
                    mode="append",
                    commit_properties=CommitProperties(
                        custom_metadata={"operationParameters": params}, app_transactions=apps
                    ),
                )
            return True

        return self._retrying("append", attempt, CommitFailedError)

    def overwrite(self, df: DataFrame, where: str | None = None, txn: Txn | None = None) -> bool:
        from deltalake.exceptions import CommitFailedError

        if self._already_committed(self._delta(), txn):
            return False
        df = self._conform(df, merge_schema=False)
        staged = self._stage(df)
        if where is not None:
            self._check_rows_match(staged, where)

        def attempt() -> bool:
            dt = self._delta()
            if self._already_committed(dt, txn):
                self._discard(staged)
                return False
            if where is None:
                self._commit(
                    dt, [f.add_action() for f in staged], "overwrite", txn, {"writeOperation": "OVERWRITE"}
                )
                return True
            removes, survivors, _ = self._rewrite_without(dt, where)
            with self._discarded_on_failure(survivors):
                adds = [f.add_action() for f in [*survivors, *staged]]
                self._commit(
                    dt, [*removes, *adds], "append", txn, {"writeOperation": "OVERWRITE", "predicate": where}
                )
            return True

        return self._committing("overwrite", attempt, CommitFailedError, staged)

    def delete(self, where: str) -> int:
        from deltalake.exceptions import CommitFailedError

        def attempt() -> int:
            dt = self._delta()
            removes, survivors, deleted = self._rewrite_without(dt, where)
            if not removes:
                return 0
            with self._discarded_on_failure(survivors):
                adds = [f.add_action() for f in survivors]
                self._commit(
                    dt, [*removes, *adds], "append", None, {"writeOperation": "DELETE", "predicate": where}
                )
            return deleted

        return self._retrying("delete", attempt, CommitFailedError)

    # ------------------------------------------------------------------ maintenance

    def optimize(self) -> dict[str, Any]:
        from deltalake.exceptions import CommitFailedError

        def attempt() -> dict[str, Any]:
            with translated(self.path):
                return dict(self._delta().optimize.compact())

        return self._retrying("optimize", attempt, CommitFailedError)

    def vacuum(self, retention_hours: float = 168, enforce_retention: bool = True) -> list[str]:
        dt = self._delta()
        try:
            # Full, not lite: files no commit names (a killed writer's staged or moved files,
            # a failed commit's) go too once past the retention, as delta-spark's VACUUM does;
            # a live writer's staged files are younger than any retention.
            return list(
                dt.vacuum(
                    retention_hours=math.ceil(retention_hours),
                    dry_run=False,
                    enforce_retention_duration=enforce_retention,
                    full=True,
                )
            )
        except Exception as exc:
            if "retention" in str(exc).lower():
                raise MedallionError(
                    f"vacuum {self.path}: {retention_hours} h is below the table's retention "
                    "(delta.deletedFileRetentionDuration); pass enforce_retention=False to vacuum anyway"
                ) from None
            raise


def _bounds(actions: pa.Table, columns: Sequence[str]) -> pa.Table:
    """``min.<column>`` and ``max.<column>`` of each file of ``actions`` (delta-rs's flattened add
    actions), null where the log keeps no bound."""
    import pyarrow as pa

    names = [f"{side}.{column}" for column in columns for side in ("min", "max")]
    return pa.table(
        [actions.column(n) if n in actions.column_names else pa.nulls(actions.num_rows) for n in names],
        names=names,
    )
