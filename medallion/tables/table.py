"""The contract every Delta engine honours: one small handle per table.

Usage::

    from medallion.tables import Table

    events = Table.create(spark, "/lake/tables/silver/events", SILVER_EVENTS_SCHEMA,
                          partition_by=["event_date"])
    events.append(df, txn=("ingest:events", 7))      # False if batch 7 was already committed
    events.overwrite(day_df, where="event_date = '2026-11-20'")
    events.merge(updates, on="event_id", update_condition="target.source = 'speed'")
    events.read(version=3).count()
    stream = events.read_stream(starting_version=4)

The engine is a string: ``"rs"`` (embedded delta-rs, Spark doing the compute) or
``"spark"`` (delta-spark on the JVM). Both write plain Delta tables that the other reads.
Each engine's class is registered under its name by :mod:`medallion.tables`
(:func:`register_engine`): the engines import this contract, and it imports none of them.
"""

from __future__ import annotations

import abc
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from medallion.errors import ConcurrentWriteError, MedallionError, SchemaMismatchError, one_line
from medallion.tables.checks import check_same_schema, normalize_path, schema_differences

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

Txn = tuple[str, int]
T = TypeVar("T")

ENGINES = ("rs", "spark")


class Table(abc.ABC):
    """A Delta table at a path, read and written through one engine.

    Get one with :meth:`Table.at` (existing table) or :meth:`Table.create` (idempotent),
    never with the constructor. Every write is one Delta commit: readers see all of it or
    none of it.

    Example::

        t = Table.at(spark, "/lake/tables/gold/predictions")
        t.version()                     # 12
        t.history()[0]["operation"]     # 'MERGE'
        t.read(timestamp="2026-11-20T00:00:00Z").count()
    """

    #: Attempts for a write that conflicts with a concurrent commit (overwrite, merge,
    #: delete; an append only conflicts on its txn). Backoff doubles from 50 ms.
    max_attempts: int = 5
    #: Whether :meth:`replace_partition` is available (the embedded engine's).
    replaces_partitions: ClassVar[bool] = False
    #: Engine name -> class, as :func:`register_engine` filled it.
    _engines: ClassVar[dict[str, type[Table]]] = {}

    def __init__(self, spark: SparkSession, path: str) -> None:
        self.spark = spark
        self.path = normalize_path(path)

    # ------------------------------------------------------------------ construction

    @classmethod
    def at(cls, spark: SparkSession, path: str, engine: str = "rs") -> Table:
        """The existing table at ``path``; :class:`TableNotFoundError` if there is none."""
        return _engine_class(engine)._open(spark, path)

    @classmethod
    def create(
        cls,
        spark: SparkSession,
        path: str,
        schema: StructType,
        partition_by: Sequence[str] = (),
        properties: dict[str, str] | None = None,
        engine: str = "rs",
    ) -> Table:
        """Create the table, or return the one already there if its schema matches.

        Example::

            Table.create(spark, path, BRONZE_SCHEMA)          # v0
            Table.create(spark, path, BRONZE_SCHEMA)          # same table, still v0
            Table.create(spark, path, OTHER_SCHEMA)           # SchemaMismatchError
        """
        missing = [c for c in partition_by if c not in schema.fieldNames()]
        if missing:
            raise SchemaMismatchError(f"partition column(s) {', '.join(missing)} not in the schema of {path}")
        table = _engine_class(engine)._create(spark, path, schema, list(partition_by), dict(properties or {}))
        missing, added, changed = schema_differences(table.schema, schema)
        if added and not missing and not changed and all(schema[name].nullable for name in added):
            # A declared schema that grew nullable columns: a table written before keeps its
            # rows (null in the new columns) and takes the columns, as merge_schema does.
            table.append(spark.createDataFrame([], schema), merge_schema=True)
            table = _engine_class(engine)._open(spark, path)
        check_same_schema(table.path, table.schema, schema, what="the requested schema")
        return table

    @classmethod
    def exists(cls, spark: SparkSession, path: str, engine: str = "rs") -> bool:
        """True if ``path`` holds a Delta table (a ``_delta_log`` with at least one commit)."""
        return _engine_class(engine)._exists(spark, path)

    def __repr__(self) -> str:
        return f"Table({self.path!r}, engine={self.engine!r})"

    # ------------------------------------------------------------------ engine hooks

    #: The engine's name, as :func:`register_engine` knows it.
    engine: ClassVar[str] = "?"

    @classmethod
    @abc.abstractmethod
    def _open(cls, spark: SparkSession, path: str) -> Table: ...

    @classmethod
    @abc.abstractmethod
    def _create(
        cls,
        spark: SparkSession,
        path: str,
        schema: StructType,
        partition_by: list[str],
        properties: dict[str, str],
    ) -> Table: ...

    @classmethod
    @abc.abstractmethod
    def _exists(cls, spark: SparkSession, path: str) -> bool: ...

    # ------------------------------------------------------------------ the contract

    @property
    @abc.abstractmethod
    def schema(self) -> StructType:
        """The table's current schema (timestamps are UTC ``timestamp``)."""

    @property
    @abc.abstractmethod
    def partition_by(self) -> list[str]:
        """The table's partition columns, in order."""

    @abc.abstractmethod
    def read(self, version: int | None = None, timestamp: str | datetime | None = None) -> DataFrame:
        """The table as of now, or as of ``version`` / ``timestamp`` (time travel).

        ``timestamp`` is an ISO string or datetime; a naive one is read as UTC. It selects
        the last version committed at or before it. Both at once is a ``ValueError``.
        """

    def lookup(self, column: str, values: Sequence[Any], columns: Sequence[str] | None = None) -> pa.Table:
        """The current rows whose ``column`` is one of ``values``, on the driver (``columns`` only).

        For point lookups of a few keys, such as one event's serving row; every matching row
        comes to the driver, so filter and deduplicate large matches in Spark instead::

            found = serving.lookup("event_id", ["evt-000123"], columns=["event_id", "score"])
            found.num_rows, found.column("score").to_pylist()
        """
        from pyspark.sql import functions as F

        rows = self.read().where(F.col(column).isin(list(values)))
        return (rows.select(*columns) if columns else rows).toArrow()

    def read_between(self, column: str, low: Any, high: Any) -> DataFrame:
        """The current rows whose ``column`` lies in [``low``, ``high``]. The files whose log
        statistics put every value of ``column`` outside the range are not read (Delta's data
        skipping), so a narrow range of a large table reads a fraction of it::

            recent = silver.read_between("event_id", "evt-0100", "evt-0200")
        """
        from pyspark.sql import functions as F

        return self.read().where(F.col(column).between(F.lit(low), F.lit(high)))

    def file_statistics(self, columns: Sequence[str]) -> pa.Table | None:
        """The log's ``min.<column>`` and ``max.<column>`` of every current data file (null
        where the log keeps no bound), or None from an engine that cannot read them cheaply::

            stats = bronze.file_statistics(["ingested_at"])
            stats.column("max.ingested_at")
        """
        return None

    @abc.abstractmethod
    def read_stream(
        self, starting_version: int | None = None, max_files_per_trigger: int | None = None
    ) -> DataFrame:
        """A streaming DataFrame of the rows each new version appends.

        Without ``starting_version`` the stream starts with the current snapshot. Commits
        that remove data (overwrite, merge, delete) are skipped, as Delta's
        ``skipChangeCommits`` does, and so are rewrites without data change (optimize).
        """

    @abc.abstractmethod
    def append(
        self,
        df: DataFrame | pa.Table,
        txn: Txn | None = None,
        merge_schema: bool = False,
        expected_rows: int | None = None,
    ) -> bool:
        """Append ``df``; False (and nothing written) if ``txn`` was already committed.

        ``txn=(app_id, version)`` makes the write idempotent: a later call whose app id
        already holds that version or a higher one commits nothing. ``df`` must have the
        table's columns and types (order does not matter); with ``merge_schema=True`` new
        columns are added to the table and missing ones are written as nulls. ``df`` may
        also be a ``pyarrow.Table`` already on the driver (a small batch collected once for
        several writes); it must then have exactly the table's columns.

        ``expected_rows``: about how many rows ``df`` holds, when the caller has counted
        them anyway. An engine may use it to pick a cheaper way to write a small frame
        (the embedded one writes it from the driver, without a Spark write job).
        """

    @abc.abstractmethod
    def overwrite(self, df: DataFrame, where: str | None = None, txn: Txn | None = None) -> bool:
        """Replace the whole table, or only the rows matching the SQL predicate ``where``.

        Every row of ``df`` must match ``where`` (as with Delta's ``replaceWhere``).

        Example::

            t.overwrite(day_df, where="event_date = DATE'2026-11-20'")
        """

    @abc.abstractmethod
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
        """Upsert ``source`` into the table on equal ``on`` keys.

        Matched rows are deleted where ``delete_condition`` holds (if given), else updated
        with every source column (only where ``update_condition`` holds, if given);
        unmatched rows are inserted (only where ``insert_condition`` holds, if given).
        Conditions may name ``target.<col>`` and ``source.<col>``. Returns
        ``{"inserted": n, "updated": m, "deleted": d}``. ``source`` may be a
        ``pyarrow.Table`` on the driver, with exactly the table's columns.

        ``partition`` (values of partition columns) confines the merge to one partition,
        as a partition condition in a Delta merge's ``ON`` clause does: only its rows can
        match, and every source row must belong to it. Engines then read and rewrite that
        partition only, and commits to other partitions meanwhile do not conflict.

        Example::

            t.merge(rows, on="event_id", update_condition="target.source = 'speed'")
            t.merge(audit, on=["event_date", "batch_version"], update=False)   # insert-only
            t.merge(day_rows, on="event_id", partition={"event_date": date(2026, 11, 20)})
        """

    def replace_partition(self, build: Callable[[], DataFrame], partition: Mapping[str, Any]) -> int:
        """Make ``partition`` hold exactly the rows ``build()`` returns; returns how many.

        ``build`` is called after the table's snapshot is taken, so whatever else it reads was
        committed before that snapshot. A commit that touches the partition after it makes
        this one conflict, and ``build`` runs again on the newer state; commits to other
        partitions are stepped over. Only where :attr:`replaces_partitions`::

            serving.replace_partition(lambda: day_rows(), {"event_date": date(2026, 11, 20)})
        """
        raise NotImplementedError(f"{type(self).__name__} cannot replace a partition: use merge")

    @abc.abstractmethod
    def delete(self, where: str) -> int:
        """Delete the rows matching the SQL predicate ``where``; returns how many."""

    @abc.abstractmethod
    def version(self) -> int:
        """The latest committed version (0 right after :meth:`create`)."""

    @abc.abstractmethod
    def history(self) -> list[dict[str, Any]]:
        """Commits newest first: ``version``, ``timestamp`` (UTC datetime), ``operation``,
        ``operationParameters`` and, where the engine records them, ``operationMetrics``."""

    @abc.abstractmethod
    def optimize(self) -> dict[str, Any]:
        """Compact small files into bigger ones (a no-data-change commit); returns metrics."""

    @abc.abstractmethod
    def vacuum(self, retention_hours: float = 168, enforce_retention: bool = True) -> list[str]:
        """Delete files no version younger than ``retention_hours`` references; returns them.

        Below the table's ``delta.deletedFileRetentionDuration`` (7 days by default) pass
        ``enforce_retention=False``: time travel and running readers may then lose files.
        """

    @abc.abstractmethod
    def last_txn_version(self, app_id: str) -> int | None:
        """The highest version committed with ``txn=(app_id, version)``, or None."""

    # ------------------------------------------------------------------ shared helpers

    def _retrying(self, operation: str, attempt: Callable[[], T], conflict: type[BaseException]) -> T:
        """Run ``attempt`` until it commits; ``conflict`` means a concurrent commit won.

        Each attempt re-plans against the newest snapshot, so a retry is as correct as a
        first try; after :attr:`max_attempts` the caller learns which table stayed busy.
        """
        for number in range(1, self.max_attempts + 1):
            try:
                return attempt()
            except conflict as exc:
                if number == self.max_attempts:
                    raise ConcurrentWriteError(
                        f"{operation} on {self.path} lost to concurrent commits {number} times "
                        f"({one_line(exc)}); serialize the writers of this table or retry later"
                    ) from None
                time.sleep(0.05 * 2 ** (number - 1) * (1 + random.random()))
        raise AssertionError("unreachable")


def register_engine(name: str, table_class: type[Table]) -> None:
    """Make ``engine=name`` in :meth:`Table.at`, :meth:`Table.create` and :meth:`Table.exists`
    mean ``table_class``. :mod:`medallion.tables` registers both engines when imported::

        register_engine("rs", DeltaRsTable)
    """
    Table._engines[name] = table_class


def _engine_class(engine: str) -> type[Table]:
    try:
        return Table._engines[engine]
    except KeyError:
        raise MedallionError(
            f"unknown Delta engine {engine!r}: use one of {', '.join(ENGINES)} (or resolve 'auto' with resolve_engine)"
        ) from None
