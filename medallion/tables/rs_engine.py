"""The embedded engine: Delta log by delta-rs (the ``deltalake`` package), compute by Spark.

Writes: executors write parquet (``df.write.parquet``) into ``<table>/staging-<uuid>/``,
the driver moves the files next to the table's other files, reads their parquet footers
(numRecords, min/max, nullCount: no data is read) and commits every add action in ONE
delta-rs transaction. The staging folder is deliberately not ``_``-prefixed: if the
driver dies between the write and the commit, ``vacuum`` finds and deletes the orphans.
An append whose caller says it is small (``expected_rows``, e.g. a streaming micro-batch)
is collected as Arrow and written and committed by delta-rs: no Spark write job.

Reads: Spark gets the snapshot's file list with ``basePath`` set to the table root, so
partition columns come back from the paths. The directory itself is never read: it also
holds files that earlier versions removed. Tables this can misread (deletion vectors in
use, column mapping, reader features Spark's parquet reader knows nothing of) are refused
when opened, read or written, with a MedallionError that says to use ``delta.engine=spark``.

Example::

    from medallion.tables import Table

    t = Table.create(spark, "/lake/tables/gold/features", schema, partition_by=["event_date"])
    t.append(df, txn=("features-nightly", 20261120))
    t.overwrite(day, where="event_date = DATE'2026-11-20'")
    t.read(version=1).count()

Memory: reads, appends, overwrites and deletes never collect table data to the driver.
:meth:`RsTable.merge` does: its source goes to the driver as one Arrow table (bounded by
``spark.driver.maxResultSize``, 1 GiB by default; budget about twice the source's Arrow
size in driver memory) and delta-rs rewrites the touched target files in the driver
process. Merge micro-batches that way. A merge confined to one partition
(``partition=...``, e.g. a day of serving) is executed by Spark instead
(:mod:`medallion.tables.partition_merge`): the partition is rewritten, nothing collected.
For bulk replacement use ``overwrite(where=...)``, which Spark executes.
"""

from __future__ import annotations

import json
import math
import posixpath
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from medallion.errors import MedallionError, SchemaMismatchError, TableNotFoundError
from medallion.tables.partition_merge import (
    MergeClauses,
    check_partition,
    merged_partition,
    partition_conflict,
    partition_text,
    rows_outside_message,
)
from medallion.tables.staged import StagedFile, describe_file, is_data_file
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
    import pyarrow.fs as pafs
    from deltalake import DeltaTable
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

STAGING_PREFIX = "staging-"
# A Spark write job costs about 0.2 s however few its rows (job, commit protocol, renames):
# an append known to be at most this small is collected and written by delta-rs instead.
DRIVER_WRITE_ROWS = 50_000


# delta-rs checkpoints every 100 commits, Delta Lake every 10. Every call here reads the log,
# and replaying 90 JSON commits cost a streaming table 38 ms per read against 6 ms from a
# checkpoint: a micro-batch reads about a dozen logs. A checkpoint costs its commit ~10 ms.
LOG_DEFAULTS = {"delta.checkpointInterval": "10"}


class RsTable(Table, engine="rs"):
    """A Delta table handled by delta-rs, with Spark doing the reading and writing.

    Example::

        t = RsTable.at(spark, "/lake/tables/bronze/events")
        t.append(df, txn=("ingest:events", 3))
        t.last_txn_version("ingest:events")   # 3
    """

    replaces_partitions = True

    # ------------------------------------------------------------------ construction

    @classmethod
    def _open(cls, spark: SparkSession, path: str) -> RsTable:
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
    ) -> RsTable:
        from deltalake import DeltaTable, Schema

        table = cls(spark, path)
        ntz = [f.name for f in schema.fields if f.dataType.typeName() == "timestamp_ntz"]
        if ntz:
            raise SchemaMismatchError(
                f"column(s) {', '.join(ntz)} of {table.path} are timestamp_ntz: use TimestampType (UTC) so every "
                "Delta reader sees the same instant"
            )
        if not DeltaTable.is_deltatable(table.path):
            with _translated(table.path):
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

        with _translated(self.path):
            dt = DeltaTable(self.path, version=version)
        # Every open, read, stream and write starts here: a table this engine would misread
        # is refused before any of them touches its files.
        refuse_unreadable(dt, self.path)
        return dt

    @property
    def schema(self) -> StructType:
        return _spark_schema(self._delta())

    @property
    def partition_by(self) -> list[str]:
        return _partition_columns(self._delta())

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
            raise MedallionError(f"read {self.path}: pass version or timestamp, not both")
        dt = self._delta()
        if timestamp is not None:
            when = as_utc(timestamp)
            # By the commit timestamps history() reports. delta-rs would go by the commit
            # files' modification times, which trail them: reading as of a commit's own
            # timestamp could give the version before it.
            versions = [e["version"] for e in self.history() if e["timestamp"] <= when]
            if not versions:
                raise MedallionError(f"{self.path} has no version at or before {when.isoformat()}")
            with _translated(self.path):
                dt.load_as_version(max(versions))
        elif version is not None:
            latest = dt.version()
            if not 0 <= version <= latest:
                raise MedallionError(
                    f"{self.path} has versions 0..{latest}; version {version} does not exist"
                )
            with _translated(self.path):
                dt.load_as_version(version)
        refuse_unreadable(dt, self.path)  # time travel: an old version may use what the latest does not
        return self._scan(dt, dt.file_uris())

    def _scan(self, dt: DeltaTable, files: Sequence[str]) -> DataFrame:
        schema = _spark_schema(dt)
        if not files:
            return self.spark.createDataFrame([], schema)
        return (
            self.spark.read.schema(schema)
            .option("basePath", self.path)
            .parquet(*files)
            .select(*[_quoted(name) for name in schema.fieldNames()])
        )

    def file_statistics(self, columns: Sequence[str]) -> pa.Table:
        import pyarrow as pa

        files = pa.table(self._delta().get_add_actions(flatten=True))
        names = [f"{side}.{column}" for column in columns for side in ("min", "max")]
        return pa.table(
            [files.column(n) if n in files.column_names else pa.nulls(files.num_rows) for n in names],
            names=names,
        )

    def read_stream(
        self, starting_version: int | None = None, max_files_per_trigger: int | None = None
    ) -> DataFrame:
        from medallion.tables.datasource import register

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
        schema = _spark_schema(dt)
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
            params = {"writeOperation": "APPEND", "partitionBy": json.dumps(_partition_columns(dt))}
            with _translated(self.path):
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
        """Upsert through delta-rs: ``source`` is collected to the driver as Arrow.

        Bound: the source must fit in driver memory (``spark.driver.maxResultSize``, 1 GiB
        by default; plan for about twice its Arrow size). The target is not collected:
        delta-rs rewrites only the files holding matched keys.

        With ``partition``, a DataFrame source is merged by Spark instead: the partition's
        files are rewritten (copy-on-write, as delta-spark does) and nothing is collected.
        Commits to other partitions in the meantime do not make it start over.
        """
        import pyarrow as pa
        from deltalake.exceptions import CommitFailedError
        from deltalake.transaction import CommitProperties, Transaction

        keys = [on] if isinstance(on, str) else list(on)
        on_driver = isinstance(source, pa.Table)
        if on_driver:
            source = arrow_in_table_order(self.path, self.schema, source)
        else:
            source = self._conform(source, merge_schema=False)
        unknown = [k for k in keys if k not in source.schema.names]
        if unknown:
            raise SchemaMismatchError(
                f"merge into {self.path}: key column(s) {', '.join(unknown)} not in the table"
            )
        nothing = {"inserted": 0, "updated": 0, "deleted": 0}
        if not (update or insert or delete_condition):
            return nothing
        if partition is not None:
            check_partition(self.path, partition, self.partition_by)
            clauses = MergeClauses(update, insert, update_condition, insert_condition, delete_condition)
            if not on_driver:
                return self._merge_partition(source, keys, partition, clauses, txn)
            outside = _rows_outside(source, partition)
            if outside:
                raise MedallionError(rows_outside_message(self.path, partition, outside))

        def attempt() -> dict[str, int]:
            # The snapshot is taken before the source is computed: a commit landing in
            # between makes ours conflict (retries=0), so the merge is never planned
            # against a stale table.
            dt = self._delta()
            if self._already_committed(dt, txn):
                return nothing
            rows = source if on_driver else source.toArrow()
            if rows.num_rows == 0 and txn is None:
                return nothing
            predicate = " AND ".join(f"target.{_df_ident(k)} = source.{_df_ident(k)}" for k in keys)
            if partition is not None:
                predicate += "".join(
                    f" AND target.{_df_ident(k)} = '{partition_text(v)}'" for k, v in partition.items()
                )
            apps = [Transaction(txn[0], int(txn[1]))] if txn else None
            with _translated(self.path):
                merger = dt.merge(
                    rows,
                    predicate,
                    source_alias="source",
                    target_alias="target",
                    streamed_exec=False,
                    commit_properties=CommitProperties(max_commit_retries=0, app_transactions=apps),
                )
                if delete_condition:
                    merger = merger.when_matched_delete(predicate=delete_condition)
                if update:
                    merger = merger.when_matched_update_all(predicate=update_condition)
                if insert:
                    merger = merger.when_not_matched_insert_all(predicate=insert_condition)
                metrics = merger.execute()
            return {
                "inserted": int(metrics.get("num_target_rows_inserted", 0)),
                "updated": int(metrics.get("num_target_rows_updated", 0)),
                "deleted": int(metrics.get("num_target_rows_deleted", 0)),
            }

        return self._retrying("merge", attempt, CommitFailedError)

    def _merge_partition(
        self,
        source: DataFrame,
        keys: list[str],
        partition: Mapping[str, Any],
        clauses: MergeClauses,
        txn: Txn | None,
    ) -> dict[str, int]:
        """Spark rewrites the partition's files with the merge applied; delta-rs commits the swap."""
        from deltalake.exceptions import CommitFailedError
        from deltalake.transaction import RemoveAction

        def attempt() -> dict[str, int]:
            dt = self._delta()
            if self._already_committed(dt, txn):
                return {"inserted": 0, "updated": 0, "deleted": 0}
            files, target_rows = _files_in(dt, partition)
            target = self._scan(dt, [posixpath.join(self.path, rel) for rel in files])
            merged = merged_partition(source, target, keys, partition, clauses, self.path, target_rows)
            staged = self._stage(merged.rows)
            with self._discarded_on_failure(staged):
                counts = merged.figures()  # raises if the source broke a merge rule
                if not any(counts.values()):
                    # Nothing changes: no new version, unless a txn must be recorded.
                    self._discard(staged)
                    if txn is None:
                        return counts
                    staged, files = [], {}
                now = int(time.time() * 1000)
                actions = [RemoveAction(rel, True, now, size) for rel, size in files.items()]
                actions += [f.add_action() for f in staged]
                params = {
                    "writeOperation": "MERGE",
                    "mergePredicate": " AND ".join(f"target.{k} = source.{k}" for k in keys),
                    "partition": json.dumps({k: partition_text(v) for k, v in partition.items()}),
                }
                self._commit_over_other_partitions(dt, actions, txn, params, partition)
            return counts

        return self._retrying("merge", attempt, CommitFailedError)

    def replace_partition(self, build: Callable[[], DataFrame], partition: Mapping[str, Any]) -> int:
        """See :meth:`Table.replace_partition`: Spark writes the new files, delta-rs commits
        the swap on top of the snapshot ``build`` ran after."""
        from deltalake.exceptions import CommitFailedError
        from deltalake.transaction import RemoveAction
        from pyspark.sql import Observation
        from pyspark.sql import functions as F

        from medallion.observation import observed

        replacing = "replace partition of"
        check_partition(self.path, partition, self.partition_by, operation=replacing)
        where = " AND ".join(f"{_quoted(k)} = '{partition_text(v)}'" for k, v in partition.items())

        def attempt() -> int:
            dt = self._delta()
            files, _ = _files_in(dt, partition)
            outside = Observation()
            rows = self._conform(build(), merge_schema=False)
            rows = rows.observe(outside, F.count_if(~F.coalesce(F.expr(where), F.lit(False))).alias("rows"))
            staged = self._stage(rows)
            if not staged and not files:
                return 0
            with self._discarded_on_failure(staged):
                figures = observed(outside)
                if figures is None:  # no action reported it: look at what was written
                    self._check_rows_match(staged, where)
                elif figures["rows"]:
                    raise MedallionError(
                        rows_outside_message(
                            self.path,
                            partition,
                            figures["rows"],
                            operation=replacing,
                            remedy="make build return only its rows",
                        )
                    )
                now = int(time.time() * 1000)
                actions = [RemoveAction(rel, True, now, size) for rel, size in files.items()]
                actions += [f.add_action() for f in staged]
                params = {
                    "predicate": where,
                    "partition": json.dumps({k: partition_text(v) for k, v in partition.items()}),
                }
                self._commit_over_other_partitions(
                    dt, actions, None, {"writeOperation": "OVERWRITE", **params}, partition
                )
            return sum(f.num_records for f in staged)

        return self._retrying("replace", attempt, CommitFailedError)

    def _commit_over_other_partitions(
        self, dt: DeltaTable, actions: list, txn: Txn | None, params: dict[str, str], partition
    ) -> None:
        """Commit, stepping over concurrent commits that left ``partition`` alone.

        A commit that touched the partition (or the metadata) raises ``CommitFailedError``:
        the caller plans the merge again on the new snapshot.
        """
        from deltalake.exceptions import CommitFailedError

        fs, root = _filesystem(self.path)
        while True:
            try:
                self._commit(dt, actions, "append", txn, params)
                return
            except CommitFailedError:
                head = self._delta()
                if head.version() <= dt.version():
                    raise  # not a newer commit in the way: nothing to step over
                if self._already_committed(head, txn):
                    raise  # a concurrent run of the same txn won; the retry finds it done
                if partition_conflict(fs, root, dt.version(), head.version(), partition):
                    raise
                dt = head

    # ------------------------------------------------------------------ maintenance

    def optimize(self) -> dict[str, Any]:
        from deltalake.exceptions import CommitFailedError

        def attempt() -> dict[str, Any]:
            with _translated(self.path):
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

    # ------------------------------------------------------------------ internals

    def _already_committed(self, dt: DeltaTable, txn: Txn | None) -> bool:
        if txn is None:
            return False
        done = dt.transaction_version(txn[0])
        return done is not None and done >= int(txn[1])

    def _conform(self, df: DataFrame, merge_schema: bool, schema: StructType | None = None) -> DataFrame:
        """``df`` with the table's columns in the table's order; evolves the schema if asked.

        ``schema``: the table's, if the caller has it at hand (else it is read).
        """
        from pyspark.sql import functions as F

        table = schema if schema is not None else self.schema
        missing, extra, changed = schema_differences(table, df.schema)
        if changed or ((missing or extra) and not merge_schema):
            raise SchemaMismatchError(describe_mismatch(self.path, missing, extra, changed, "the frame"))
        if extra:
            self._add_columns([df.schema[name] for name in extra])
            table = self.schema
        columns = [
            _quoted(f.name) if f.name in df.columns else F.lit(None).cast(f.dataType).alias(f.name)
            for f in table.fields
        ]
        return df.select(*columns)

    def _add_columns(self, fields: list) -> None:
        from deltalake import Field

        new = [Field.from_json(json.dumps({**field.jsonValue(), "nullable": True})) for field in fields]
        with _translated(self.path):
            self._delta().alter.add_columns(new)

    def _stage(self, df: DataFrame) -> list[StagedFile]:
        """Write ``df`` with Spark, move its files into the table, describe them from footers."""
        _use_micros_timestamps(self.spark)
        fs, root = _filesystem(self.path)
        staging = f"{STAGING_PREFIX}{uuid.uuid4().hex}"
        stage_uri = posixpath.join(self.path, staging)
        partition_by = self.partition_by
        writer = df.write.mode("errorifexists")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.parquet(stage_uri)

        import pyarrow.fs as pafs

        written = [
            info.path
            for info in fs.get_file_info(pafs.FileSelector(posixpath.join(root, staging), recursive=True))
            if info.type == pafs.FileType.File and is_data_file(info.path)
        ]
        moved = []
        for source in written:
            relative = posixpath.relpath(source, posixpath.join(root, staging))
            target = posixpath.join(root, relative)
            fs.create_dir(posixpath.dirname(target), recursive=True)
            fs.move(source, target)
            moved.append(relative)
        fs.delete_dir(posixpath.join(root, staging))
        schema = self.schema
        with ThreadPoolExecutor(max_workers=8) as pool:
            staged = list(pool.map(lambda rel: describe_file(fs, root, rel, schema), moved))
        empty = [f for f in staged if f.num_records == 0]
        self._discard(empty)
        staged = [f for f in staged if f.num_records > 0]
        self._check_not_null(staged, schema)
        return staged

    def _check_not_null(self, staged: list[StagedFile], schema: StructType) -> None:
        required = [f.name for f in schema.fields if not f.nullable]
        nulls: dict[str, int] = {}
        for f in staged:
            counts = json.loads(f.stats).get("nullCount", {})
            for name in required:
                if counts.get(name, 0):
                    nulls[name] = nulls.get(name, 0) + counts[name]
        if nulls:
            self._discard(staged)
        self._refuse_nulls(nulls)

    def _refuse_nulls(self, nulls: dict[str, int]) -> None:
        """One line naming each NOT NULL column that would get nulls, and how many."""
        if nulls:
            found = ", ".join(f"{name} ({n} nulls)" for name, n in nulls.items())
            raise SchemaMismatchError(
                f"NOT NULL column(s) of {self.path} would get nulls: {found}; fill or filter them"
            )

    def _check_rows_match(self, staged: list[StagedFile], where: str) -> None:
        if not staged:
            return
        written = self._scan(self._delta(), [posixpath.join(self.path, f.path) for f in staged])
        outside = written.where(f"NOT coalesce(({where}), false)").limit(1).count()
        if outside:
            self._discard(staged)
            raise MedallionError(
                f"overwrite of {self.path}: some rows do not match where={where!r}; "
                "filter the frame to the predicate (as Delta's replaceWhere requires)"
            )

    def _rewrite_without(self, dt: DeltaTable, where: str) -> tuple[list, list[StagedFile], int]:
        """Remove actions for the files holding rows matching ``where``, and their survivors rewritten."""
        from deltalake.transaction import RemoveAction
        from pyspark.sql import functions as F

        uris = dt.file_uris()
        if not uris:
            return [], [], 0
        sizes = _sizes(dt)
        # Spark reuses a part file's name in every partition directory a task writes, so a
        # scanned file maps to its log path by its partition directories plus its name.
        depth = len(dt.metadata().partition_columns) + 1
        by_name = {_tail(unquote(rel), depth): rel for rel in sizes}
        try:
            touched = (
                self._scan(dt, uris).where(where).groupBy(F.input_file_name().alias("file")).count().collect()
            )
        except Exception as exc:
            raise MedallionError(f"predicate {where!r} on {self.path}: {_one_line(exc)}") from None
        if not touched:
            return [], [], 0
        files = [by_name[_tail(_plain(row["file"]), depth)] for row in touched]
        deleted = sum(row["count"] for row in touched)
        now = int(time.time() * 1000)
        removes = [RemoveAction(rel, True, now, sizes.get(rel)) for rel in files]
        survivors_df = self._scan(dt, [posixpath.join(self.path, rel) for rel in files]).where(
            f"NOT coalesce(({where}), false)"
        )
        survivors = self._stage(survivors_df)
        return removes, survivors, deleted

    def _commit(
        self,
        dt: DeltaTable,
        actions: list,
        mode: str,
        txn: Txn | None,
        parameters: dict[str, str],
        retries: int | None = 0,
    ) -> None:
        """One delta-rs transaction. ``retries=0``: any concurrent commit fails ours, so
        :meth:`_retrying` re-plans on the new snapshot; blind appends let delta-rs rebase."""
        from deltalake.transaction import CommitProperties, Transaction

        apps = [Transaction(txn[0], int(txn[1]))] if txn else None
        partition_by = _partition_columns(dt)
        params = {**parameters, "partitionBy": json.dumps(partition_by)}
        props = CommitProperties(
            custom_metadata={"operationParameters": params}, max_commit_retries=retries, app_transactions=apps
        )
        with _translated(self.path):
            dt.create_write_transaction(
                actions, mode, dt.schema(), partition_by=partition_by or None, commit_properties=props
            )

    def _committing(self, operation: str, attempt, conflict, staged: list[StagedFile]):
        with self._discarded_on_failure(staged):
            return self._retrying(operation, attempt, conflict)

    @contextmanager
    def _discarded_on_failure(self, staged: list[StagedFile]) -> Iterator[None]:
        """Files staged for a commit are deleted if the block fails, unless the commit landed.

        delta-rs can fail after it wrote the commit (its post-commit checkpoint or log
        cleanup): the version is durable then, and deleting its files would lose its rows.
        So the log decides, not the exception.
        """
        try:
            yield
        except BaseException:
            if not self._landed(staged):
                self._discard(staged)
            raise

    def _landed(self, staged: list[StagedFile]) -> bool:
        """Whether the table's current snapshot names any of ``staged`` (or cannot be read:
        then the files stay, as an orphan costs disk and a deleted committed file costs rows)."""
        from urllib.parse import unquote

        import pyarrow as pa

        if not staged:
            return False
        try:
            actions = pa.table(self._delta().get_add_actions(flatten=True))
        except Exception:
            return True
        paths = {unquote(path) for path in actions.column("path").to_pylist()}
        return any(unquote(f.path) in paths for f in staged)

    def _discard(self, staged: list[StagedFile]) -> None:
        """Delete files written for a commit that will not happen (nothing references them)."""
        fs, root = _filesystem(self.path)
        for f in staged:
            with suppress(FileNotFoundError):
                fs.delete_file(posixpath.join(root, f.path))


# --------------------------------------------------------------------------- foreign tables

# Reader features this engine reads as delta-spark does: delta-rs replays the log (classic
# and v2 checkpoints) and Spark reads timestamp_ntz parquet columns as such. Deletion vectors
# and column mapping only where they change nothing: no file has a vector, the mode is none.
READABLE_FEATURES = frozenset({"timestampNtz", "v2Checkpoint", "deletionVectors", "columnMapping"})
# Verdict per (table, table id, version): a version's protocol, metadata and files never
# change, and looking for deletion vectors reads them. Forgotten wholesale when full.
_VERDICTS: dict[tuple[str, str, int], str | None] = {}
_MAX_VERDICTS = 4096


def refuse_unreadable(dt: DeltaTable, path: str) -> None:
    """Raise a one-line MedallionError if this engine would misread ``dt`` at its version."""
    key = (dt.table_uri, dt.metadata().id, dt.version())
    try:
        problem = _VERDICTS[key]
    except KeyError:
        if len(_VERDICTS) >= _MAX_VERDICTS:
            _VERDICTS.clear()
        problem = _VERDICTS[key] = _unreadable(dt)
    if problem:
        raise MedallionError(f"{path} (version {key[2]}) {problem}: set delta.engine=spark")


def _unreadable(dt: DeltaTable) -> str | None:
    """Why Spark, handed ``dt``'s data files and schema, would not read the table right."""
    import pyarrow as pa

    protocol = dt.protocol()
    if protocol.min_reader_version > 3:
        return (
            f"needs Delta reader version {protocol.min_reader_version}, which the embedded engine cannot read"
        )
    features = set(protocol.reader_features or ())
    unknown = sorted(features - READABLE_FEATURES)
    if unknown:
        return f"uses the reader feature(s) {', '.join(unknown)}, which the embedded engine cannot read"
    # Data files name their columns by physical names (col-<uuid>, or the names before a
    # rename): read by logical name, they come back as nulls. Reader version 2 is this.
    mode = dt.metadata().configuration.get("delta.columnMapping.mode", "none")
    if mode.lower() != "none":
        return f"uses column mapping (mode {mode}), which the embedded engine cannot read"
    if "deletionVectors" in features:
        # Spark would bring back the rows a vector marks deleted. delta-rs tells which files
        # have one only by materializing the vectors: once per version, as the verdict is kept.
        vectors = pa.RecordBatchReader.from_stream(dt.deletion_vectors())
        if any(batch.num_rows for batch in vectors):
            return "uses deletion vectors, which the embedded engine cannot apply"
    return None


# --------------------------------------------------------------------------- helpers


@contextmanager
def _translated(path: str) -> Iterator[None]:
    """delta-rs errors a user can cause, as one-line MedallionErrors naming the table."""
    from deltalake.exceptions import CommitFailedError
    from deltalake.exceptions import SchemaMismatchError as RsSchemaMismatch
    from deltalake.exceptions import TableNotFoundError as RsTableNotFound

    try:
        yield
    except RsTableNotFound as exc:
        raise TableNotFoundError(f"no Delta table at {path}: {_one_line(exc)}") from None
    except RsSchemaMismatch as exc:
        raise SchemaMismatchError(f"schema mismatch writing {path}: {_one_line(exc)}") from None
    except CommitFailedError:
        raise  # a conflict: the retry loop decides
    except FileNotFoundError as exc:
        raise TableNotFoundError(f"no Delta table at {path}: {_one_line(exc)}") from None


def _partition_columns(dt: DeltaTable) -> list[str]:
    return list(dt.metadata().partition_columns)


def _spark_schema(dt: DeltaTable) -> StructType:
    from pyspark.sql.types import StructType

    return StructType.fromJson(json.loads(dt.schema().to_json()))


def _filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    import pyarrow.fs as pafs

    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), path


def _use_micros_timestamps(spark: SparkSession) -> None:
    # Spark's default INT96 has no usable parquet statistics and is legacy for Delta;
    # delta-spark forces TIMESTAMP_MICROS the same way.
    if spark.conf.get("spark.sql.parquet.outputTimestampType") != "TIMESTAMP_MICROS":
        spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")


def _plain(uri: str) -> str:
    """A file URI or path as a comparable local-or-remote path (no scheme noise, decoded)."""
    text = unquote(uri)
    if text.startswith("file:"):
        text = text[len("file:") :]
        while text.startswith("//"):
            text = text[1:]
    return text


def _tail(path: str, segments: int) -> str:
    """The last ``segments`` parts of a path: a data file relative to its table."""
    return "/".join(path.rstrip("/").split("/")[-segments:])


def _files_in(dt: DeltaTable, partition: Mapping[str, Any]) -> tuple[dict[str, int], int | None]:
    """The snapshot's files of one partition (log path -> size) and their rows, if all have stats."""
    import pyarrow as pa

    actions = pa.table(dt.get_add_actions(flatten=True))
    keep = [True] * actions.num_rows
    for key, value in partition.items():
        text = partition_text(value)
        values = actions.column(f"partition.{key}").to_pylist()
        keep = [k and v is not None and partition_text(v) == text for k, v in zip(keep, values, strict=True)]
    paths, sizes = actions.column("path").to_pylist(), actions.column("size_bytes").to_pylist()
    records = actions.column("num_records").to_pylist()
    kept = [i for i, k in enumerate(keep) if k]
    counts = [records[i] for i in kept]
    rows = None if any(n is None for n in counts) else sum(counts)
    return {paths[i]: sizes[i] for i in kept}, rows


def _rows_outside(rows: pa.Table, partition: Mapping[str, Any]) -> int:
    """How many Arrow rows do not belong to ``partition``."""
    import pyarrow.compute as pc

    inside = None
    for key, value in partition.items():
        same = pc.fill_null(pc.equal(pc.cast(rows.column(key), "string"), partition_text(value)), False)
        inside = same if inside is None else pc.and_(inside, same)
    return rows.num_rows - pc.sum(inside).as_py() if rows.num_rows else 0


def _sizes(dt: DeltaTable) -> dict[str, int]:
    import pyarrow as pa

    actions = pa.table(dt.get_add_actions(flatten=True))
    return dict(
        zip(actions.column("path").to_pylist(), actions.column("size_bytes").to_pylist(), strict=True)
    )


def _quoted(name: str) -> str:
    return f"`{name.replace('`', '``')}`"


def _df_ident(name: str) -> str:
    # DataFusion folds unquoted identifiers to lower case.
    return name if name.isidentifier() and name == name.lower() else '"' + name.replace('"', '""') + '"'
