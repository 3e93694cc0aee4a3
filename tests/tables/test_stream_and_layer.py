"""Streaming reads, the foreachBatch sink, engine resolution, the Lakehouse, and interop."""

from __future__ import annotations

from medallion.tables import Lakehouse, Table, resolve_engine
from tests.tables.conftest import SCHEMA


def _drain(stream, checkpoint: str) -> tuple[list[str], list[int]]:
    """Run ``stream`` until it has consumed what is available: emitted ids, rows per batch."""
    seen: list[str] = []
    sizes: list[int] = []

    def collect(batch, _):
        rows = [r.event_id for r in batch.collect()]
        seen.extend(rows)
        sizes.append(len(rows))

    # processingTime, not availableNow: pyspark 4.0 gives Python sources no admission
    # control, so availableNow would read everything in one batch.
    query = (
        stream.writeStream.foreachBatch(collect)
        .option("checkpointLocation", checkpoint)
        .trigger(processingTime="100 milliseconds")
        .start()
    )
    try:
        query.processAllAvailable()
    finally:
        query.stop()
    return sorted(seen), [n for n in sizes if n]


def test_read_stream_emits_appends_skips_changes_and_restarts(spark, events, frame, tmp_path):
    events.append(frame(range(3)))  # v1
    events.append(frame(range(3, 5)))  # v2
    checkpoint = str(tmp_path / "checkpoint")
    seen, _ = _drain(events.read_stream(starting_version=2), checkpoint)
    assert seen == ["e3", "e4"]

    events.delete("event_id = 'e0'")  # v3: a change commit, skipped
    events.append(frame(range(5, 7)))  # v4
    seen, _ = _drain(events.read_stream(starting_version=2), checkpoint)  # restart from the checkpoint
    assert seen == ["e5", "e6"]


def test_read_stream_starts_with_the_snapshot_and_respects_max_files(spark, engine, events, frame, tmp_path):
    for i in range(2):
        events.append(frame([i]).repartition(1))
    sizes: list[int] = []
    query = (
        events.read_stream(max_files_per_trigger=1)
        .writeStream.foreachBatch(lambda batch, _: sizes.append(batch.count()))
        .option("checkpointLocation", str(tmp_path / "cp"))
        .trigger(processingTime="100 milliseconds")
        .start()
    )
    try:
        query.processAllAvailable()  # the snapshot
        for i in range(2, 5):
            events.append(frame([i]).repartition(1))
        query.processAllAvailable()
    finally:
        query.stop()
    # maxFilesPerTrigger caps every micro-batch, the snapshot's too (delta-spark). pyspark gives
    # a Python stream reader no admission control, so the embedded engine's first batch of a
    # run catches up on the whole snapshot (see medallion/tables/delta_rs/datasource.py).
    snapshot = [1, 1] if engine == "spark" else [2]
    assert [n for n in sizes if n] == [*snapshot, 1, 1, 1]


def test_resolve_engine_and_lakehouse(spark, settings):
    settings.delta.engine = "auto"
    engine, reason = resolve_engine(spark, settings)
    # Both engines load in this session; auto takes the embedded one, per bench/engines.py.
    assert engine == "rs" and "bench/engines.py" in reason and "delta-spark loads too" in reason
    lake = Lakehouse(settings, spark)
    assert lake.engine == "rs"
    assert lake.path("silver", "events") == settings.storage.table_path("silver", "events")
    assert not lake.exists("silver", "events")
    created = lake.create("silver", "events", SCHEMA, partition_by=["event_date"])
    assert lake.exists("silver", "events")
    assert lake.table("silver", "events").path == created.path
    # The registered data source reads the same rows as the handle.
    assert spark.read.format("delta").load(created.path).count() == 0


def test_rs_tables_are_plain_delta_for_other_readers(spark, table_path, frame):
    from deltalake import DeltaTable

    events = Table.create(spark, table_path, SCHEMA, partition_by=["event_date"], engine="rs")
    events.append(frame(range(4)))
    events.delete("event_id = 'e0'")
    dt = DeltaTable(table_path)
    assert dt.protocol().min_reader_version == 1  # any Delta reader, delta-spark included
    data = dt.to_pyarrow_table()
    assert sorted(data.column("event_id").to_pylist()) == ["e1", "e2", "e3"]
    assert str(data.schema.field("event_ts").type) == "timestamp[us, tz=UTC]"
    stats = DeltaTable(table_path).get_add_actions(flatten=True)
    import pyarrow as pa

    stats = pa.table(stats)
    assert sum(stats.column("num_records").to_pylist()) == 3
    assert "min.event_ts" in stats.column_names and "max.n" in stats.column_names
    # The registered `delta` data source reads the same table, time travel included.
    assert spark.read.format("delta").load(table_path).count() == 3
    assert spark.read.format("delta").option("versionAsOf", 1).load(table_path).count() == 4
