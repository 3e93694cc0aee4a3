"""How rows get into a table's data files and out of them: Spark scans and writes parquet,
delta-rs commits the files.

A write goes through four steps, each a method of :class:`DataFiles`::

    df = table._conform(df, merge_schema=False)   # the table's columns, in its order
    staged = table._stage(df)                     # Spark writes staging-<uuid>/, files move in
    table._commit(dt, [f.add_action() for f in staged], "append", txn, {"writeOperation": "APPEND"})
    table._discard(staged)                        # only if the commit will not happen

The staging folder is not ``_``-prefixed on purpose: if the driver dies between the write
and the commit, ``vacuum`` finds and deletes the orphans. Files of a commit that landed are
never discarded, whatever failed after it (:meth:`DataFiles._discarded_on_failure`).
"""

from __future__ import annotations

import json
import posixpath
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING
from urllib.parse import unquote

from medallion.errors import MedallionError, SchemaMismatchError, one_line
from medallion.tables.checks import describe_mismatch, schema_differences
from medallion.tables.delta_rs.log import filesystem, partition_columns, plain, spark_schema, tail, translated
from medallion.tables.delta_rs.staged import StagedFile, describe_file, is_data_file

if TYPE_CHECKING:
    from deltalake import DeltaTable
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

    from medallion.tables.table import Txn

STAGING_PREFIX = "staging-"


class DataFiles:
    """The data-file part of :class:`~medallion.tables.delta_rs.DeltaRsTable`, which mixes it in.

    It works on the table's ``spark`` and ``path``, takes snapshots with ``_delta()`` and
    reads ``schema`` and ``partition_by``, as DeltaRsTable defines them; commits that conflict are
    retried by :meth:`Table._retrying`.
    """

    spark: SparkSession
    path: str

    def _scan(self, dt: DeltaTable, files: Sequence[str]) -> DataFrame:
        """``files`` of ``dt`` read by Spark; partition columns come from their paths (``basePath``)."""
        schema = spark_schema(dt)
        if not files:
            return self.spark.createDataFrame([], schema)
        return (
            self.spark.read.schema(schema)
            .option("basePath", self.path)
            .parquet(*files)
            .select(*[quoted(name) for name in schema.fieldNames()])
        )

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
            quoted(f.name) if f.name in df.columns else F.lit(None).cast(f.dataType).alias(f.name)
            for f in table.fields
        ]
        return df.select(*columns)

    def _add_columns(self, fields: list) -> None:
        from deltalake import Field

        new = [Field.from_json(json.dumps({**field.jsonValue(), "nullable": True})) for field in fields]
        with translated(self.path):
            self._delta().alter.add_columns(new)

    def _stage(self, df: DataFrame) -> list[StagedFile]:
        """Write ``df`` with Spark, move its files into the table, describe them from footers."""
        _use_micros_timestamps(self.spark)
        fs, root = filesystem(self.path)
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
        by_name = {tail(unquote(rel), depth): rel for rel in sizes}
        try:
            touched = (
                self._scan(dt, uris).where(where).groupBy(F.input_file_name().alias("file")).count().collect()
            )
        except Exception as exc:
            raise MedallionError(f"predicate {where!r} on {self.path}: {one_line(exc)}") from None
        if not touched:
            return [], [], 0
        files = [by_name[tail(plain(row["file"]), depth)] for row in touched]
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
        partition_by = partition_columns(dt)
        params = {**parameters, "partitionBy": json.dumps(partition_by)}
        props = CommitProperties(
            custom_metadata={"operationParameters": params}, max_commit_retries=retries, app_transactions=apps
        )
        with translated(self.path):
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
        fs, root = filesystem(self.path)
        for f in staged:
            with suppress(FileNotFoundError):
                fs.delete_file(posixpath.join(root, f.path))


def _use_micros_timestamps(spark: SparkSession) -> None:
    # Spark's default INT96 has no usable parquet statistics and is legacy for Delta;
    # delta-spark forces TIMESTAMP_MICROS the same way.
    if spark.conf.get("spark.sql.parquet.outputTimestampType") != "TIMESTAMP_MICROS":
        spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")


def _sizes(dt: DeltaTable) -> dict[str, int]:
    import pyarrow as pa

    actions = pa.table(dt.get_add_actions(flatten=True))
    return dict(
        zip(actions.column("path").to_pylist(), actions.column("size_bytes").to_pylist(), strict=True)
    )


def quoted(name: str) -> str:
    """A column name as a Spark SQL identifier."""
    return f"`{name.replace('`', '``')}`"
