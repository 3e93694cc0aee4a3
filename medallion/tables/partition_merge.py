"""A merge confined to one partition, computed by Spark: copy-on-write of that partition's files.

The embedded engine uses it when a DataFrame is merged with ``partition=`` (for example
reconciling one ``event_date`` of serving): Spark full-outer-joins the source with the
partition's rows and writes the partition anew, so nothing is collected to the driver.

Usage::

    from medallion.tables.partition_merge import MergeClauses, merged_partition, partition_conflict

    merged = merged_partition(source, day_rows, ["event_id"], {"event_date": day}, MergeClauses())
    merged.rows.write.parquet(staging)       # the one action: joins, decides, counts
    merged.counts()                          # {"inserted": .., "updated": .., "deleted": ..}
    partition_conflict(fs, root, read_version, head_version, {"event_date": day})  # None: commit on top

Semantics are Delta's MERGE with the partition in its condition: a matched row is deleted
where ``delete_condition`` holds, else updated where ``update_condition`` holds (or always);
an unmatched source row is inserted where ``insert_condition`` holds (or always); target rows
nobody matched are kept as they are.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from medallion.errors import MedallionError
from medallion.observation import observed

_IN_SOURCE = "__medallion_in_source"
_IN_TARGET = "__medallion_in_target"
_ACTION = "__medallion_action"
_OUTSIDE = "__medallion_outside"
_KEPT, _INSERTED, _UPDATED, _DELETED, _DROPPED = range(5)


@dataclass(frozen=True)
class MergeClauses:
    """Which of a merge's clauses run, and their SQL conditions (naming ``source.`` / ``target.``)."""

    update: bool = True
    insert: bool = True
    update_condition: str | None = None
    insert_condition: str | None = None
    delete_condition: str | None = None


@dataclass(frozen=True)
class MergedPartition:
    """The partition's rows after the merge (lazy) and the figures its computation observes."""

    rows: DataFrame
    path: str
    partition: Mapping[str, Any]
    keys: Sequence[str]
    target: DataFrame
    decided: DataFrame
    metrics: list[Column]
    observations: tuple[Observation, ...]
    target_rows: int | None

    def counts(self) -> dict[str, int]:
        """Rows inserted, updated and deleted; raises if the source broke a merge rule.

        Call after an action computed :attr:`rows`: the counts come with it, no extra job.
        """
        reported = [observed(o) for o in self.observations]
        if all(r is not None for r in reported):
            got = {k: v for counts in reported for k, v in counts.items()}
        else:  # no action reported them: count them with jobs of our own
            got = self.decided.agg(*self.metrics).first().asDict()
            if self.target_rows is None:
                got["target_rows"] = self.target.count()
        if self.target_rows is not None:
            got["target_rows"] = self.target_rows
        counts = {name: int(got[name] or 0) for name in ("inserted", "updated", "deleted")}
        outside = int(got["outside"] or 0)
        if outside:
            raise MedallionError(rows_outside_message(self.path, self.partition, outside))
        # A target row is joined once per source row matching it. Delta refuses more than
        # one: the outcome would depend on their order.
        if int(got["target_side"] or 0) > int(got["target_rows"] or 0):
            raise MedallionError(several_matches_message(self.path, self.keys))
        return counts


def _merge_action(clauses: MergeClauses, has_source: Column, has_target: Column) -> tuple[Column, Column]:
    """(what happens to each joined row, as a code; whether it takes the source's values).

    A code, because the merge's figures are counted over the narrow projected rows, not over
    the wide joined ones (which would then be materialized)."""
    matched = has_source & has_target
    deleted = matched & _holds(clauses.delete_condition) if clauses.delete_condition else F.lit(False)
    updated = matched & ~deleted & _holds(clauses.update_condition) if clauses.update else F.lit(False)
    inserted = has_source & ~has_target & _holds(clauses.insert_condition) if clauses.insert else F.lit(False)
    action = (
        F.when(deleted, F.lit(_DELETED))
        .when(updated, F.lit(_UPDATED))
        .when(inserted, F.lit(_INSERTED))
        .when(has_target, F.lit(_KEPT))
        .otherwise(F.lit(_DROPPED))
    )
    return action, updated | inserted


def merged_partition(
    source: DataFrame,
    target: DataFrame,
    keys: Sequence[str],
    partition: Mapping[str, Any],
    clauses: MergeClauses,
    path: str = "<table>",
    target_rows: int | None = None,
) -> MergedPartition:
    """The rows of one partition after merging ``source`` into its current rows ``target``.

    ``target`` holds exactly the partition's rows (``target_rows`` of them, if known, e.g.
    from the log's file statistics; else they are counted as the merge runs). ``source``
    should hold only rows of the partition: others are counted and refused. Both have the
    table's columns.
    """
    checked = Observation()
    observations = [checked]
    if target_rows is None:
        counted = Observation()
        observations.append(counted)
        target = target.observe(counted, F.count(F.lit(1)).alias("target_rows"))
    in_source = source.withColumn(_IN_SOURCE, F.lit(True)).alias("source")
    in_target = target.withColumn(_IN_TARGET, F.lit(True)).alias("target")
    # Both sides hold only the partition: its columns would add nothing to the join but hashing.
    join_keys = [k for k in keys if k not in partition] or list(keys)
    on = reduce(Column.__and__, [_side("source", k) == _side("target", k) for k in join_keys])
    joined = in_source.join(in_target, on, "full_outer")

    has_source = F.col(f"source.{_IN_SOURCE}").isNotNull()
    has_target = F.col(f"target.{_IN_TARGET}").isNotNull()
    action, take_source = _merge_action(clauses, has_source, has_target)
    in_partition = reduce(Column.__and__, [_side("source", k) == F.lit(v) for k, v in partition.items()])
    decided = joined.select(
        *[
            F.when(take_source, _side("source", c)).otherwise(_side("target", c)).alias(c)
            for c in target.columns
        ],
        action.alias(_ACTION),
        (has_source & ~F.coalesce(in_partition, F.lit(False))).alias(_OUTSIDE),
        has_target.alias(_IN_TARGET),
    )
    metrics = [
        _count(F.col(_ACTION) == _INSERTED).alias("inserted"),
        _count(F.col(_ACTION) == _UPDATED).alias("updated"),
        _count(F.col(_ACTION) == _DELETED).alias("deleted"),
        _count(F.col(_OUTSIDE)).alias("outside"),
        # A target row appears once per source row matching it, else once.
        _count(F.col(_IN_TARGET)).alias("target_side"),
    ]
    rows = (
        decided.observe(checked, *metrics)
        .where(F.col(_ACTION).isin(_KEPT, _UPDATED, _INSERTED))
        .select(*target.columns)
    )
    return MergedPartition(
        rows, path, dict(partition), list(keys), target, decided, metrics, tuple(observations), target_rows
    )


def partition_conflict(
    fs, root: str, read_version: int, head_version: int, partition: Mapping[str, Any]
) -> str | None:
    """Why commits ``read_version+1 .. head_version`` conflict with rewriting ``partition``, or None.

    They conflict if one added or removed a file of the partition (its rows were not read)
    or changed the table's metadata or protocol. Commits to other partitions do not: the
    rewrite can go on top of them as planned.
    """
    wanted = {k: partition_text(v) for k, v in partition.items()}
    for version in range(read_version + 1, head_version + 1):
        log = posixpath.join(root, "_delta_log", f"{version:020d}.json")
        try:
            with fs.open_input_stream(log) as handle:
                lines = handle.read().decode().splitlines()
        except FileNotFoundError:
            return f"version {version}'s log entry is gone"
        for line in lines:
            action = json.loads(line) if line.strip() else {}
            if "metaData" in action or "protocol" in action:
                return f"version {version} changed the table's metadata"
            for kind in ("add", "remove"):
                values = action.get(kind, {}).get("partitionValues")
                if values is not None and all(values.get(k) == v for k, v in wanted.items()):
                    return f"version {version} changed partition {_described(partition)}"
    return None


def partition_text(value: Any) -> str:
    """A partition value as the Delta log writes it."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def check_partition(
    path: str, partition: Mapping[str, Any], partition_by: Sequence[str], operation: str = "merge into"
) -> None:
    """A one-line error unless ``partition`` gives non-null values to partition columns.

    Values are compared with the log's text of them: dates, strings, integers and booleans.
    """
    if not partition or any(k not in partition_by or v is None for k, v in partition.items()):
        raise MedallionError(
            f"{operation} {path}: partition={{{_described(partition)}}} must give values to some of its "
            f"partition columns ({', '.join(partition_by) or 'none'})"
        )


def rows_outside_message(
    path: str,
    partition: Mapping[str, Any],
    rows: int | None = None,
    operation: str = "merge into",
    remedy: str = "filter the source to it or merge without partition=",
) -> str:
    count = f"{rows} source row(s)" if rows is not None else "source rows"
    return f"{operation} {path}: {count} lie outside partition {_described(partition)}; {remedy}"


def several_matches_message(path: str, keys: Sequence[str]) -> str:
    return (
        f"merge into {path}: several source rows match the same target row on "
        f"({', '.join(keys)}); make the source unique on those columns"
    )


def _described(partition: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={partition_text(v)}" for k, v in partition.items())


def _side(alias: str, column: str) -> Column:
    return F.col(f"{alias}.`{column.replace('`', '``')}`")


def _holds(condition: str | None) -> Column:
    return F.lit(True) if condition is None else F.coalesce(F.expr(condition), F.lit(False))


def _count(flag: Column) -> Column:
    return F.sum(F.when(flag, 1).otherwise(0)).cast("long")
