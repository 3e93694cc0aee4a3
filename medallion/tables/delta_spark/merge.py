"""The merging part of :class:`~medallion.tables.delta_spark.DeltaSparkTable`, which mixes it in.

delta-spark's own merge builder (``DeltaTable.merge``), with the contract's additions: a merge
that would change nothing is not run (delta-spark would still commit), a partition's merge
checks its source as it reads it, and a source that breaks a merge rule is the one-line error
the embedded engine raises.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import reduce
from typing import TYPE_CHECKING, Any

from medallion.errors import MedallionError
from medallion.tables.delta_spark.errors import CommitConflict, conflicts, translated
from medallion.tables.partition_merge import (
    MergeClauses,
    check_partition,
    partition_text,
    rows_outside_message,
    several_matches_message,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame

    from medallion.tables.table import Txn

_MATCHED_ROW = "__medallion_target_row"


class Merges:
    """Mixed into DeltaSparkTable: uses its ``path``, ``partition_by``, ``_delta``,
    ``_conform``, ``_frame``, ``_already_committed``, ``_dml_txn`` and ``_retrying``."""

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
        keys = [on] if isinstance(on, str) else list(on)
        source = self._conform(self._frame(source), merge_schema=False)
        nothing = {"inserted": 0, "updated": 0, "deleted": 0}
        if not (update or insert or delete_condition):
            return nothing
        clauses = MergeClauses(update, insert, update_condition, insert_condition, delete_condition)
        condition = " AND ".join(f"target.`{k}` = source.`{k}`" for k in keys)
        outside = None
        if partition is not None:
            source, condition, outside = self._within_partition(source, condition, partition)

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
                conflicts(),
                translated(self.path),
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

        return self._retrying("merge", attempt, CommitConflict)

    def _within_partition(
        self, source: DataFrame, condition: str, partition: Mapping[str, Any]
    ) -> tuple[DataFrame, str, str]:
        """A merge confined to ``partition``: the source checked to hold only its rows, the
        condition naming it, and the message a row outside it raises."""
        from pyspark.sql import Column
        from pyspark.sql import functions as F

        check_partition(self.path, partition, self.partition_by)
        # Checked as the merge reads the source, not by a pass of its own.
        inside = reduce(Column.__and__, [F.col(k) == F.lit(v) for k, v in partition.items()])
        outside = rows_outside_message(self.path, partition)
        source = source.where(
            F.when(F.coalesce(inside, F.lit(False)), True).otherwise(F.raise_error(F.lit(outside)))
        )
        # In the ON clause, delta-spark prunes the other partitions' files and its conflict
        # detection ignores commits that touched only them.
        condition += "".join(f" AND target.`{k}` = '{partition_text(v)}'" for k, v in partition.items())
        return source, condition, outside

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


def _holds(condition: str | None, default: bool) -> Column:
    """A merge clause's SQL condition as a column (a null result does not hold)."""
    from pyspark.sql import functions as F

    return F.lit(default) if condition is None else F.coalesce(F.expr(condition), F.lit(False))
