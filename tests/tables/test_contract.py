"""The table contract, run against every engine present (rs here; spark where its jars are)."""

from __future__ import annotations

import threading
import time
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from medallion.errors import ConcurrentWriteError, MedallionError, SchemaMismatchError, TableNotFoundError
from medallion.tables import Table
from medallion.tables.arrow import may_match, may_overlap
from tests.tables.conftest import SCHEMA

DAY1, DAY2 = date(2026, 11, 20), date(2026, 11, 21)


def ids(df) -> list[str]:
    return sorted(r.event_id for r in df.select("event_id").collect())


def test_create_is_idempotent_and_checks_schema(spark, engine, events, table_path):
    assert Table.exists(spark, table_path, engine=engine)
    again = Table.create(spark, table_path, SCHEMA, partition_by=["event_date"], engine=engine)
    assert again.version() == 0
    assert again.schema.simpleString() == SCHEMA.simpleString()
    assert again.schema["event_ts"].dataType.typeName() == "timestamp"  # UTC, not timestamp_ntz
    required = StructType([*SCHEMA.fields, StructField("extra", StringType(), nullable=False)])
    with pytest.raises(SchemaMismatchError, match="extra"):
        Table.create(spark, table_path, required, partition_by=["event_date"], engine=engine)
    changed = StructType([f if f.name != "n" else StructField("n", StringType()) for f in SCHEMA.fields])
    with pytest.raises(SchemaMismatchError, match="n"):
        Table.create(spark, table_path, changed, partition_by=["event_date"], engine=engine)
    # A declared schema that grew a nullable column: the table takes it, its rows read null there.
    grown = StructType([*SCHEMA.fields, StructField("extra", StringType())])
    evolved = Table.create(spark, table_path, grown, partition_by=["event_date"], engine=engine)
    assert evolved.schema.fieldNames() == grown.fieldNames()


def test_partition_columns_come_back_in_their_order_and_another_order_is_refused(spark, engine, storage_root):
    by_two = Table.create(
        spark, str(storage_root / "two"), SCHEMA, partition_by=["n", "event_date"], engine=engine
    )
    assert by_two.partition_by == ["n", "event_date"]
    assert Table.at(spark, by_two.path, engine=engine).partition_by == ["n", "event_date"]
    with pytest.raises(SchemaMismatchError, match="partitioned by"):
        Table.create(spark, by_two.path, SCHEMA, partition_by=["event_date", "n"], engine=engine)
    assert Table.create(spark, str(storage_root / "none"), SCHEMA, engine=engine).partition_by == []


def test_missing_table_names_the_path(spark, engine, storage_root):
    path = str(storage_root / "nowhere")
    assert not Table.exists(spark, path, engine=engine)
    with pytest.raises(TableNotFoundError, match=f"no Delta table at {path}"):
        Table.at(spark, path, engine=engine)


def test_time_travel_goes_by_the_timestamps_history_shows(spark, table_path, frame):
    """rs: a commit file written after its commit's timestamp (a slow disk, a busy machine)
    is still the version as of that timestamp."""
    import os

    events = Table.create(spark, table_path, SCHEMA, engine="rs")
    events.append(frame(range(3)))
    committed = events.history()[0]["timestamp"]
    log = Path(table_path) / "_delta_log" / f"{1:020d}.json"
    later = committed.timestamp() + 2
    os.utime(log, (later, later))
    assert ids(events.read(timestamp=committed)) == ["e0", "e1", "e2"]


def test_append_read_and_time_travel(events, frame):
    assert events.append(frame(range(3)))
    before = events.history()[0]["timestamp"]
    time.sleep(0.05)
    assert events.append(frame(range(3, 5), DAY2))
    assert events.version() == 2
    assert ids(events.read()) == ["e0", "e1", "e2", "e3", "e4"]
    assert ids(events.read(version=1)) == ["e0", "e1", "e2"]
    assert events.read(version=0).count() == 0
    assert ids(events.read(timestamp=before)) == ["e0", "e1", "e2"]
    with pytest.raises(MedallionError, match="has no version at or before"):
        events.read(timestamp="2000-01-01T00:00:00Z")
    with pytest.raises(
        ValueError, match="pass version or timestamp, not both"
    ):  # API misuse, as in delta's tables.py
        events.read(version=1, timestamp=before)
    row = events.read().where("event_id = 'e3'").first()
    assert row.event_date == DAY2 and str(row.amount) == "3.50"
    history = events.history()
    assert [h["version"] for h in history] == [2, 1, 0]
    assert {"version", "timestamp", "operation", "operationParameters"} <= set(history[0])


def test_lookup_brings_the_rows_of_some_keys_to_the_driver(events, frame):
    events.append(frame(range(4)))
    events.append(frame(range(4, 8), DAY2, n=2))
    events.merge(frame([1], n=7), on="event_id")  # the old e1 is no longer current
    found = events.lookup("event_id", ["e1", "e6", "nowhere"], columns=["event_id", "n", "event_date"])
    assert found.column_names == ["event_id", "n", "event_date"]
    assert sorted(found.to_pylist(), key=lambda row: row["event_id"]) == [
        {"event_id": "e1", "n": 7, "event_date": DAY1},
        {"event_id": "e6", "n": 2, "event_date": DAY2},
    ]
    assert events.lookup("event_id", ["nowhere"]).num_rows == 0
    assert events.lookup("event_id", ["e3"]).column_names == SCHEMA.fieldNames()


def test_lookup_finds_keys_in_files_whose_statistics_are_partial(events, frame):
    """A long string gets no max in the log (at most a 32-character prefix is kept): a lookup
    must still read such a file (delta-rs's pyarrow dataset skips it: a missing bound becomes
    a null guarantee)."""
    long_key = "k" * 40 + "-"
    events.append(frame(range(3)).withColumn("event_id", F.concat(F.lit(long_key), "event_id")))
    found = events.lookup("event_id", [f"{long_key}e1"], columns=["event_id"])
    assert found.column("event_id").to_pylist() == [f"{long_key}e1"]


def test_txn_makes_writes_idempotent(events, frame):
    assert events.append(frame(range(3)), txn=("app", 5)) is True
    assert events.append(frame(range(3)), txn=("app", 5)) is False
    assert events.append(frame(range(3)), txn=("app", 4)) is False  # older versions too
    assert events.overwrite(frame(range(9)), txn=("app", 5)) is False
    assert events.merge(frame(range(9)), on="event_id", txn=("app", 3)) == {
        "inserted": 0,
        "updated": 0,
        "deleted": 0,
    }
    assert events.read().count() == 3
    assert events.last_txn_version("app") == 5
    assert events.last_txn_version("other") is None
    assert events.append(frame(range(3, 4)), txn=("app", 6))
    assert events.last_txn_version("app") == 6 and events.read().count() == 4


def test_overwrite_touches_only_its_partition(events, frame):
    events.append(frame(range(4), DAY1))
    events.append(frame(range(10, 14), DAY2))
    events.overwrite(frame([20, 21], DAY2), where="event_date = DATE'2026-11-21'")
    assert ids(events.read().where(F.col("event_date") == DAY1)) == ["e0", "e1", "e2", "e3"]
    assert ids(events.read().where(F.col("event_date") == DAY2)) == ["e20", "e21"]
    with pytest.raises(Exception, match="do not match"):
        events.overwrite(frame([30], DAY1), where="event_date = DATE'2026-11-21'")
    events.overwrite(frame([99], DAY1))
    assert ids(events.read()) == ["e99"]


def test_overwrite_of_one_day_keeps_the_other_day_of_the_same_write(events, frame):
    # One task writing two partitions gives both files the same name in different directories.
    events.append(frame(range(3), DAY1).unionByName(frame(range(10, 13), DAY2)).coalesce(1))
    events.overwrite(frame([20], DAY2), where="event_date = DATE'2026-11-21'")
    assert ids(events.read().where(F.col("event_date") == DAY1)) == ["e0", "e1", "e2"]
    assert ids(events.read().where(F.col("event_date") == DAY2)) == ["e20"]
    events.overwrite(frame([30], DAY1), where="event_date = DATE'2026-11-20'")
    assert ids(events.read()) == ["e20", "e30"]


def test_overwrite_where_on_a_data_column_rewrites_only_matching_rows(events, frame):
    events.append(frame(range(6)))
    events.overwrite(frame([1], n=7), where="event_id = 'e1'")
    got = {r.event_id: r.n for r in events.read().collect()}
    assert got == {"e0": 1, "e1": 7, "e2": 1, "e3": 1, "e4": 1, "e5": 1}


def test_merge_upserts_and_conditional_update(events, frame):
    events.append(frame(range(3), n=1))
    metrics = events.merge(frame(range(1, 5), n=2), on="event_id")
    assert metrics == {"inserted": 2, "updated": 2, "deleted": 0}
    assert {r.event_id: r.n for r in events.read().collect()} == {"e0": 1, "e1": 2, "e2": 2, "e3": 2, "e4": 2}
    # Only rows whose target n is 1 may be updated; inserts still happen.
    metrics = events.merge(
        frame([0, 1, 9], n=3), on=["event_id", "event_date"], update_condition="target.n = 1"
    )
    assert metrics == {"inserted": 1, "updated": 1, "deleted": 0}
    got = {r.event_id: r.n for r in events.read().collect()}
    assert got["e0"] == 3 and got["e1"] == 2 and got["e9"] == 3
    assert events.merge(frame([2, 50]), on="event_id", update=False) == {
        "inserted": 1,
        "updated": 0,
        "deleted": 0,
    }
    assert events.read().count() == 7


def test_merge_deletes_and_inserts_only_where_their_conditions_hold(events, frame):
    events.append(frame(range(4), n=1))
    metrics = events.merge(
        frame([0, 1, 8, 9], n=5),
        on="event_id",
        delete_condition="source.event_id IN ('e0', 'e8')",
        update_condition="target.n = 1",
        insert_condition="source.event_id <> 'e8'",
    )
    assert metrics == {"inserted": 1, "updated": 1, "deleted": 1}
    assert {r.event_id: r.n for r in events.read().collect()} == {"e1": 5, "e2": 1, "e3": 1, "e9": 5}


def test_delete_returns_rows_deleted(events, frame):
    events.append(frame(range(5)))
    assert events.delete("event_id IN ('e1', 'e3')") == 2
    assert ids(events.read()) == ["e0", "e2", "e4"]
    assert events.delete("event_id = 'nope'") == 0
    assert events.version() == 2


def test_schema_mismatch_names_columns_and_merge_schema_evolves(events, frame):
    df = frame(range(2))
    with pytest.raises(SchemaMismatchError, match=r"not in the table: extra"):
        events.append(df.withColumn("extra", F.lit("x")))
    with pytest.raises(SchemaMismatchError, match=r"type differs: n \(bigint in the table, string"):
        events.append(df.withColumn("n", F.col("n").cast("string")))
    with pytest.raises(SchemaMismatchError, match="missing in the frame: amount"):
        events.append(df.drop("amount"))
    assert events.read().count() == 0
    assert events.append(df.withColumn("extra", F.lit("x")), merge_schema=True)
    assert "extra" in events.schema.fieldNames()
    assert events.append(frame([7]), merge_schema=True)  # the old shape: extra written as null
    assert sorted((r.event_id, r.extra) for r in events.read().collect()) == [
        ("e0", "x"),
        ("e1", "x"),
        ("e7", None),
    ]


def test_not_null_columns_reject_nulls(events, frame):
    with pytest.raises(SchemaMismatchError, match="event_id"):
        events.append(frame(range(2)).withColumn("event_id", F.lit(None).cast("string")))
    assert events.read().count() == 0


def test_optimize_compacts_and_vacuum_removes_unreferenced_files(events, frame):
    for i in range(3):
        events.append(frame([i]))
    before = events.read().count()
    metrics = events.optimize()
    assert metrics
    assert events.read().count() == before
    assert events.history()[0]["operation"] == "OPTIMIZE"
    removed = events.vacuum(retention_hours=0, enforce_retention=False)
    assert len(removed) >= 3
    assert events.read().count() == before


def test_a_small_tables_log_replay_and_vacuum_run_at_the_settings_scale(spark, table_path, frame):
    """delta-spark sizes its log replay (50 tasks) and VACUUM's listing (10000) on its own: on a
    small deployment those tasks were most of a night's time. medallion's session gives both the
    shuffle partitions. (The embedded engine runs no Spark job for either.)"""
    events = Table.create(spark, table_path, SCHEMA, partition_by=["event_date"], engine="spark")
    scale = int(spark.conf.get("spark.sql.shuffle.partitions"))
    events.append(frame([1]))
    tracker = spark.sparkContext.statusTracker()
    spark.sparkContext.setJobGroup("scale", "log replay and vacuum")
    try:
        events.vacuum(retention_hours=0, enforce_retention=False)
        events.read().count()
    finally:
        for key in ("spark.jobGroup.id", "spark.job.description"):
            spark.sparkContext.setLocalProperty(key, None)
    stages = [
        tracker.getStageInfo(stage)
        for job in tracker.getJobIdsForGroup("scale")
        for stage in tracker.getJobInfo(job).stageIds
    ]
    tasks = [stage.numTasks for stage in stages if stage is not None]
    assert tasks and max(tasks) <= scale, tasks


def test_two_concurrent_appends_both_land(events, frame):
    frames = [frame(range(0, 20)), frame(range(20, 40))]
    errors: list[BaseException] = []

    def write(df):
        try:
            events.append(df)
        except BaseException as exc:  # surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(df,)) for df in frames]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert events.read().count() == 40
    assert events.version() == 2


def test_conflicting_merges_retry_then_both_land(events, frame, gate):
    events.append(frame(range(3), n=0))
    held = gate()
    slow_source = held.holding(frame([0, 10], n=1))
    fast: dict[str, object] = {}

    def fast_merge():
        fast["counts"] = events.merge(frame([1, 11], n=2), on="event_id")

    slow, error = held.run(lambda: events.merge(slow_source, on="event_id"), fast_merge)
    assert error is None
    assert fast["counts"] == {"inserted": 1, "updated": 1, "deleted": 0}
    assert slow == {"inserted": 1, "updated": 1, "deleted": 0}
    got = {r.event_id: r.n for r in events.read().collect()}
    assert got == {"e0": 1, "e1": 2, "e2": 0, "e10": 1, "e11": 2}


def test_conflicting_merge_gives_up_with_concurrent_write_error(spark, engine, table_path, frame, gate):
    events = Table.create(spark, table_path, SCHEMA, partition_by=["event_date"], engine=engine)
    events.append(frame(range(3)))
    events.max_attempts = 1
    held = gate()
    slow_source = held.holding(frame([0]))
    _, failure = held.run(
        lambda: events.merge(slow_source, on="event_id"),
        lambda: Table.at(spark, table_path, engine=engine).merge(frame([1], n=5), on="event_id"),
    )
    assert isinstance(failure, ConcurrentWriteError)
    assert table_path in str(failure) and "\n" not in str(failure)
    assert events.read().count() == 3  # nothing torn


def test_a_small_append_gives_the_same_table_as_a_spark_write(spark, engine, storage_root, frame):
    """``expected_rows`` may change how an engine writes, never what it writes."""

    def table(name):
        return Table.create(
            spark, str(storage_root / name), SCHEMA, partition_by=["event_date"], engine=engine
        )

    by_spark, small = table("by_spark"), table("small")
    two_days = frame(range(4)).unionByName(frame(range(4, 6), DAY2))
    assert by_spark.append(two_days, txn=("app", 1))
    assert small.append(two_days, txn=("app", 1), expected_rows=6)
    assert small.append(two_days, txn=("app", 1), expected_rows=6) is False  # the txn still holds
    assert small.append(frame([]), txn=("app", 2), expected_rows=0)  # empty: only the txn lands
    assert small.last_txn_version("app") == 2
    assert sorted(small.read().collect()) == sorted(by_spark.read().collect())
    assert sorted(small.read().where(F.col("event_date") == DAY2).collect()) == sorted(
        by_spark.read().where(F.col("event_date") == DAY2).collect()
    )
    with pytest.raises(SchemaMismatchError, match="event_id"):
        small.append(frame(range(2)).withColumn("event_id", F.lit(None).cast("string")), expected_rows=2)
    assert small.read().count() == 6


def test_arrow_rows_on_the_driver_append_and_merge_like_frames(events, frame):
    """A batch collected once (e.g. a micro-batch's predictions) is written without Spark."""
    assert events.append(frame(range(3)).toArrow(), txn=("app", 1))
    assert events.append(frame(range(3)).toArrow(), txn=("app", 1)) is False
    changed = frame([2, 3], n=7).select("n", "event_id", "amount", "event_ts", "event_date")  # any order
    assert events.merge(changed.toArrow(), on="event_id") == {"inserted": 1, "updated": 1, "deleted": 0}
    assert sorted((r.event_id, r.n) for r in events.read().collect()) == [
        ("e0", 1),
        ("e1", 1),
        ("e2", 7),
        ("e3", 7),
    ]
    with pytest.raises(SchemaMismatchError, match="extra"):
        events.append(frame([9]).withColumn("extra", F.lit(1)).toArrow())
    assert events.read().count() == 4


def test_the_log_is_checkpointed_every_ten_commits(events, frame):
    # Readers replay the JSON commits after the last checkpoint: they must not pile up.
    for batch in range(11):
        events.append(frame([batch]).toArrow())
    log = Path(events.path) / "_delta_log"
    assert sorted(log.glob("*.checkpoint.parquet"))
    assert events.read().count() == 11


def test_file_statistics_bound_every_file(events, engine, frame):
    events.append(frame(range(1, 4)).coalesce(1))  # e1..e3, in one file
    events.append(frame([7], n=2).toArrow())  # e7, written from the driver
    stats = events.file_statistics(["event_id", "n"])
    if stats is None:
        assert engine == "spark"  # delta-spark keeps its statistics on the JVM
        return
    assert sorted(
        zip(stats.column("min.event_id").to_pylist(), stats.column("max.event_id").to_pylist(), strict=True)
    ) == [
        ("e1", "e3"),
        ("e7", "e7"),
    ]
    # Never False for a file holding a value: callers skip their lookup on a False.
    assert may_match(stats, "event_id", ["nowhere", "e2"]).sum() == 1
    assert not may_match(stats, "event_id", ["e0", "e5", "e9"]).any()
    assert may_match(stats, "n", [2]).sum() == 1
    # A file without both bounds (a long string's max is left out) may hold anything.
    events.append(frame([8]).withColumn("event_id", F.lit("k" * 40)))
    assert may_match(events.file_statistics(["event_id"]), "event_id", ["e5"]).sum() == 1


def test_read_between_gives_the_rows_in_range_and_skips_files_outside_it(events, engine, frame):
    events.append(frame(range(1, 4)).coalesce(1))  # e1..e3, one file
    events.append(frame(range(5, 8), n=2).coalesce(1))  # e5..e7, another
    events.append(frame([9], n=3).toArrow())  # e9, written from the driver
    inside = events.read_between("event_id", "e2", "e5")
    assert ids(inside) == ["e2", "e3", "e5"]
    assert ids(events.read_between("event_id", "e4", "e4")) == []
    assert ids(events.read_between("event_id", "e0", "e9")) == ids(events.read())
    if engine == "rs":
        # The log's bounds leave out the file of e9: only the two files meeting [e2, e5] are read.
        assert len(inside.inputFiles()) == 2
        assert events.read_between("event_id", "e4", "e4").inputFiles() == []
    # A file without both bounds (a long string's max is left out) is read: it may hold the range.
    events.append(frame([8]).withColumn("event_id", F.lit("e4" + "k" * 40)))
    assert ids(events.read_between("event_id", "e4", "e4z")) == ["e4" + "k" * 40]


def test_may_overlap_never_leaves_out_a_file_that_may_hold_the_range(events, engine, frame):
    events.append(frame(range(1, 4)).coalesce(1))
    events.append(frame([7], n=2).toArrow())
    stats = events.file_statistics(["event_id"])
    if stats is None:
        assert engine == "spark"  # delta-spark keeps its statistics on the JVM
        return
    order = sorted(stats.column("min.event_id").to_pylist())
    assert order == ["e1", "e7"]
    overlaps = dict(
        zip(stats.column("min.event_id").to_pylist(), may_overlap(stats, "event_id", "e3", "e6"), strict=True)
    )
    assert overlaps == {"e1": True, "e7": False}
    assert may_overlap(stats, "event_id", "e0", "e9").all()
    assert not may_overlap(stats, "event_id", "e4", "e6").any()
