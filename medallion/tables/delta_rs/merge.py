"""Merges and partition replacement on the embedded engine: rewriting rows in place.

Two ways to merge, chosen by where the source is and whether the merge is confined::

    t.merge(arrow_rows, on="event_id")                               # delta-rs merges on the driver
    t.merge(rows, on="event_id")                                     # collected as Arrow, likewise
    t.merge(day_rows, on="event_id", partition={"event_date": day})  # Spark rewrites the partition
    t.replace_partition(lambda: day_rows(), {"event_date": day})     # Spark writes it anew

Memory: a merge without ``partition=`` collects its source to the driver as one Arrow table
(bounded by ``spark.driver.maxResultSize``, 1 GiB by default; budget about twice the
source's Arrow size in driver memory) and delta-rs rewrites the touched target files in the
driver process. A merge confined to one partition is executed by Spark instead
(:mod:`medallion.tables.partition_merge`): the partition is rewritten, nothing collected.
That merge and :meth:`Merges.replace_partition` commit on top of concurrent commits that
left their partition alone, instead of starting over.
"""

from __future__ import annotations

import json
import posixpath
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from medallion.errors import MedallionError, SchemaMismatchError
from medallion.tables.checks import arrow_in_table_order
from medallion.tables.delta_rs.files import quoted
from medallion.tables.delta_rs.log import filesystem, translated
from medallion.tables.partition_merge import (
    MergeClauses,
    check_partition,
    merged_partition,
    partition_conflict,
    partition_text,
    rows_outside_message,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from deltalake import DeltaTable
    from pyspark.sql import DataFrame

    from medallion.tables.table import Txn


class Merges:
    """The merging part of :class:`~medallion.tables.delta_rs.DeltaRsTable`, which mixes it in.

    It plans on the table's snapshots (``_delta()``), shapes, stages and commits files with
    :class:`~medallion.tables.delta_rs.files.DataFiles`, and retries conflicts with
    :meth:`Table._retrying`.
    """

    path: str

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
        clauses = MergeClauses(update, insert, update_condition, insert_condition, delete_condition)
        if partition is not None:
            check_partition(self.path, partition, self.partition_by)
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
            return self._merge_rows(dt, rows, keys, partition, clauses, txn)

        return self._retrying("merge", attempt, CommitFailedError)

    def _merge_rows(
        self,
        dt,
        rows: pa.Table,
        keys: list[str],
        partition: Mapping[str, Any] | None,
        clauses: MergeClauses,
        txn: Txn | None,
    ) -> dict[str, int]:
        """One delta-rs merge of ``rows`` into the snapshot ``dt``, committed without retries
        (the caller retries the whole attempt on a fresh snapshot)."""
        from deltalake.transaction import CommitProperties, Transaction

        predicate = " AND ".join(f"target.{_df_ident(k)} = source.{_df_ident(k)}" for k in keys)
        if partition is not None:
            predicate += "".join(
                f" AND target.{_df_ident(k)} = '{partition_text(v)}'" for k, v in partition.items()
            )
        apps = [Transaction(txn[0], int(txn[1]))] if txn else None
        with translated(self.path):
            merger = dt.merge(
                rows,
                predicate,
                source_alias="source",
                target_alias="target",
                streamed_exec=False,
                commit_properties=CommitProperties(max_commit_retries=0, app_transactions=apps),
            )
            if clauses.delete_condition:
                merger = merger.when_matched_delete(predicate=clauses.delete_condition)
            if clauses.update:
                merger = merger.when_matched_update_all(predicate=clauses.update_condition)
            if clauses.insert:
                merger = merger.when_not_matched_insert_all(predicate=clauses.insert_condition)
            metrics = merger.execute()
        return {
            "inserted": int(metrics.get("num_target_rows_inserted", 0)),
            "updated": int(metrics.get("num_target_rows_updated", 0)),
            "deleted": int(metrics.get("num_target_rows_deleted", 0)),
        }

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
                counts = merged.counts()  # raises if the source broke a merge rule
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
        where = " AND ".join(f"{quoted(k)} = '{partition_text(v)}'" for k, v in partition.items())

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
                seen = observed(outside)
                if seen is None:  # no action reported it: look at what was written
                    self._check_rows_match(staged, where)
                elif seen["rows"]:
                    raise MedallionError(
                        rows_outside_message(
                            self.path,
                            partition,
                            seen["rows"],
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

        fs, root = filesystem(self.path)
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


def _df_ident(name: str) -> str:
    # DataFusion folds unquoted identifiers to lower case.
    return name if name.isidentifier() and name == name.lower() else '"' + name.replace('"', '""') + '"'
