"""Staged files' Delta statistics, read from parquet footers: data skipping must never drop a row."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyspark.sql.types import (
    DateType,
    DecimalType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from medallion.tables.delta_rs.staged import (
    STRING_STATS_PREFIX,
    describe_file,
    is_data_file,
    partition_values,
)

SCHEMA = StructType(
    [
        StructField("event_id", StringType()),
        StructField("n", LongType()),
        StructField("score", DoubleType()),
        StructField("amount", DecimalType(18, 2)),
        StructField("event_ts", TimestampType()),
        StructField("event_day", DateType()),
    ]
)


def _written(tmp_path, relative: str, rows: pa.Table, row_group_size: int | None = None):
    target = tmp_path / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows, target, row_group_size=row_group_size)
    staged = describe_file(pafs.LocalFileSystem(), str(tmp_path), relative, SCHEMA)
    return staged, json.loads(staged.stats)


def test_a_footer_gives_the_rows_and_each_columns_bounds_and_nulls(tmp_path):
    rows = pa.table(
        {
            "event_id": ["e2", "e1", None, "e3"],
            "n": pa.array([5, -2, 7, None], pa.int64()),
            "score": [0.5, 0.25, None, 0.75],
            "event_day": [date(2026, 11, 20), date(2026, 11, 18), date(2026, 11, 19), None],
        }
    )
    # Two row groups: the bounds and null counts are the file's, not the first group's.
    staged, stats = _written(tmp_path, "event_date=2026-11-20/part-0.parquet", rows, row_group_size=2)

    assert staged.num_records == 4 and stats["numRecords"] == 4
    assert staged.partition_values == {"event_date": "2026-11-20"}
    assert stats["minValues"] == {"event_id": "e1", "n": -2, "score": 0.25, "event_day": "2026-11-18"}
    assert stats["maxValues"] == {"event_id": "e3", "n": 7, "score": 0.75, "event_day": "2026-11-20"}
    assert stats["nullCount"] == {"event_id": 1, "n": 1, "score": 1, "event_day": 1}


def test_timestamps_keep_milliseconds_with_the_range_widened_never_narrowed(tmp_path):
    low = datetime(2026, 11, 20, 8, 0, 0, 123456, tzinfo=UTC)
    high = datetime(2026, 11, 20, 9, 30, 0, 999001, tzinfo=UTC)
    rows = pa.table({"event_ts": pa.array([low, high], pa.timestamp("us", "UTC"))})

    _, stats = _written(tmp_path, "part-0.parquet", rows)

    # Delta's JSON stats hold milliseconds: the max rounds up, or skipping would drop `high`.
    assert stats["minValues"]["event_ts"] == "2026-11-20T08:00:00.123Z"
    assert stats["maxValues"]["event_ts"] == "2026-11-20T09:30:01.000Z"


def test_long_strings_and_decimals_keep_no_bounds(tmp_path):
    long_id = "x" * (STRING_STATS_PREFIX + 8)
    rows = pa.table(
        {
            "event_id": ["a" + long_id, "b" + long_id],
            "amount": pa.array([Decimal("1.10"), Decimal("2.25")], pa.decimal128(18, 2)),
        }
    )

    _, stats = _written(tmp_path, "part-0.parquet", rows)

    # A cut-off max would sort below the real values (skipping would drop them); JSON floats
    # would round decimals. No bounds: such a file is always read.
    assert stats["minValues"] == {} and stats["maxValues"] == {}
    assert stats["nullCount"] == {"event_id": 0, "amount": 0}


def test_partition_values_decode_paths_and_hive_nulls():
    assert partition_values("country=C%C3%B4te/day=__HIVE_DEFAULT_PARTITION__/part-0.parquet") == {
        "country": "Côte",
        "day": None,
    }
    assert partition_values("part-0.parquet") == {}


def test_only_parquet_data_files_are_staged():
    assert is_data_file("/t/staging-1/event_date=2026-11-20/part-00000-abc.c000.snappy.parquet")
    assert not is_data_file("/t/staging-1/_SUCCESS")
    assert not is_data_file("/t/staging-1/.part-00000-abc.c000.snappy.parquet.crc")
    assert not is_data_file("/t/staging-1/_committed_123.parquet")
