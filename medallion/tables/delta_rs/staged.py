"""Parquet files written for a Delta commit, described from their footers as add actions.

Usage::

    staged = describe_file(fs, "/lake/tables/silver/events", "event_date=2026-11-20/part-0.parquet", schema)
    staged.num_records                  # from the footer: no data is read
    staged.add_action()                 # what the commit records, with Delta's JSON stats

Statistics follow delta-spark's: numRecords, per-column minValues / maxValues / nullCount for
top-level columns, timestamps widened to milliseconds. A column keeps both bounds or
neither: a string max longer than the prefix, a decimal or a boolean leaves it without.
"""

from __future__ import annotations

import json
import math
import posixpath
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:
    import pyarrow.fs as pafs
    from pyspark.sql.types import StructType

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
STRING_STATS_PREFIX = 32  # as delta-spark: longer max values are left out, not truncated


@dataclass(frozen=True)
class StagedFile:
    """A parquet file written for a commit: where it is and what its footer says."""

    path: str  # relative to the table root, as the log records it
    size: int
    modification_time: int
    partition_values: dict[str, str | None]
    num_records: int
    stats: str

    def add_action(self, data_change: bool = True):
        from deltalake.transaction import AddAction

        return AddAction(
            self.path, self.size, self.partition_values, self.modification_time, data_change, self.stats
        )


def is_data_file(path: str) -> bool:
    """A parquet file Spark wrote, not its ``_SUCCESS`` marker or a hidden checksum file."""
    name = posixpath.basename(path)
    return name.endswith(".parquet") and not name.startswith((".", "_"))


def partition_values(relative: str) -> dict[str, str | None]:
    """``{"event_date": "2026-11-20"}`` from ``event_date=2026-11-20/part-0.parquet`` (Hive's null is None)."""
    values: dict[str, str | None] = {}
    for segment in relative.split("/")[:-1]:
        if "=" in segment:
            key, _, value = segment.partition("=")
            value = unquote(value)
            values[unquote(key)] = None if value == HIVE_NULL else value
    return values


def describe_file(fs: pafs.FileSystem, root: str, relative: str, schema: StructType) -> StagedFile:
    """The file at ``root/relative`` as a commit will record it; ``schema``: the table's."""
    import pyarrow.parquet as pq

    full = posixpath.join(root, relative)
    info = fs.get_file_info(full)
    with fs.open_input_file(full) as handle:
        meta = pq.read_metadata(handle)
    return StagedFile(
        path=relative,
        size=info.size,
        modification_time=int(info.mtime.timestamp() * 1000) if info.mtime else int(time.time() * 1000),
        partition_values=partition_values(relative),
        num_records=meta.num_rows,
        stats=json.dumps(footer_stats(meta, schema)),
    )


def footer_stats(meta, schema: StructType) -> dict[str, Any]:
    """Delta file statistics from a parquet footer: numRecords, minValues, maxValues, nullCount."""
    top_level = {f.name: f.dataType.typeName() for f in schema.fields}
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for index in range(meta.num_columns):
        name = meta.schema.column(index).path
        kind = top_level.get(name)
        if kind is None:  # nested or not in the table
            continue
        lows, highs, count, complete = [], [], 0, True
        for group in range(meta.num_row_groups):
            stats = meta.row_group(group).column(index).statistics
            if stats is None:
                complete = False
                break
            count += stats.null_count or 0
            if stats.has_min_max:
                lows.append(stats.min)
                highs.append(stats.max)
        if not complete:
            continue
        nulls[name] = count
        if lows:
            low, high = stat_value(kind, min(lows), "min"), stat_value(kind, max(highs), "max")
            if low is not None and high is not None:
                mins[name], maxs[name] = low, high
    return {"numRecords": meta.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}


def stat_value(kind: str, value: Any, side: str) -> Any:
    """A footer min/max as Delta's JSON stats want it, or None where Delta would not keep it."""
    if kind in ("integer", "long", "short", "byte"):
        return int(value)
    if kind in ("float", "double"):
        return float(value) if math.isfinite(value) else None
    if kind == "string" and isinstance(value, str):
        if side == "min":
            return value[:STRING_STATS_PREFIX]
        return value if len(value) <= STRING_STATS_PREFIX else None
    if kind == "date" and isinstance(value, date):
        return value.isoformat()
    if kind == "timestamp" and isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        # Delta keeps milliseconds: widen the range so data skipping never drops a row.
        floored = value.replace(microsecond=value.microsecond // 1000 * 1000)
        if side == "max" and floored != value:
            floored += timedelta(milliseconds=1)
        return floored.strftime("%Y-%m-%dT%H:%M:%S.") + f"{floored.microsecond // 1000:03d}Z"
    if isinstance(value, Decimal | bool):
        return None  # JSON floats would round decimals; booleans carry no skipping value
    return None
