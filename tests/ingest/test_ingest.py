"""Landing -> bronze -> silver (+ quarantine) on real files and real Delta tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from medallion.ingest import Ingestor
from medallion.schemas import MAX_LINE_BYTES
from medallion.streaming.landing import start_ingest
from medallion.tables import Lakehouse

pytestmark = pytest.mark.usefixtures("delta_engine")


def event(event_id: str, **changes) -> dict:
    record = {
        "event_id": event_id,
        "card_id": "card-1",
        "merchant_id": "m-1",
        "merchant_category": "grocery",
        "amount": 12.5,
        "currency": "EUR",
        "country": "DE",
        "channel": "pos",
        "event_ts": "2026-11-20T13:45:12.345+01:00",
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not None}


OVERSIZED = json.dumps(event("big1", merchant_id="x" * MAX_LINE_BYTES))

MALFORMED = {
    "not JSON": "this is not json",
    "truncated JSON": '{"event_id": "t1", "amount": 1',
    "malformed JSON": '{"event_id": "j1", "amount": NaN}',
    "not a JSON object": '["e1", 12.5]',
    "wrong type: amount is not a number: abc": json.dumps(event("w1", amount="abc")),
    "missing required field: card_id": json.dumps(event("m1", card_id=None)),
    "negative amount": json.dumps(event("n1", amount=-3.0)),
    "unknown currency: XXX": json.dumps(event("c1", currency="XXX")),
    "unknown channel: mail": json.dumps(event("ch1", channel="mail")),
    "unparseable timestamp: event_ts=yesterday-ish": json.dumps(event("ts1", event_ts="yesterday-ish")),
    f"oversized line: {len(OVERSIZED.encode())} bytes > {MAX_LINE_BYTES}": OVERSIZED,
}


def land(folder: str, name: str, lines: list[str]) -> None:
    Path(folder).mkdir(parents=True, exist_ok=True)
    Path(folder, name).write_text("\n".join(lines) + "\n")


def test_each_malformed_kind_is_quarantined_with_its_reason(spark, settings):
    valid = [json.dumps(event(f"ok{i}")) for i in range(3)]
    land(settings.storage.landing_events, "events-0001.jsonl", valid + list(MALFORMED.values()))
    report = Ingestor(settings, spark).run_batch()

    counts = report.feeds["events"]
    assert counts.bronze == 3 + len(MALFORMED)
    assert counts.silver == 3
    assert counts.quarantined == len(MALFORMED)
    quarantine = Lakehouse(settings, spark).table("silver", "quarantine").read()
    reasons = {tuple(row.reasons) for row in quarantine.collect()}
    for reason in MALFORMED:
        assert (reason,) in reasons, (reason, reasons)
    raws = {row.raw for row in quarantine.collect()}
    # The raw line is kept, nothing is lost; an oversized one as far as it is readable.
    from medallion.silver import TRUNCATED

    assert set(MALFORMED.values()) - {OVERSIZED} | {OVERSIZED[:MAX_LINE_BYTES] + TRUNCATED} == raws


def test_a_byte_order_mark_is_no_error_and_blank_lines_are_counted_not_quarantined(spark, settings):
    folder = settings.storage.landing_events
    Path(folder).mkdir(parents=True, exist_ok=True)
    lines = ["\ufeff" + json.dumps(event("bom1")), "", "   ", json.dumps(event("x2")), "\t"]
    Path(folder, "events-0001.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    counts = Ingestor(settings, spark).run_batch().feeds["events"]
    assert (counts.bronze, counts.silver, counts.quarantined, counts.blank, counts.dropped) == (5, 2, 0, 3, 3)
    silver = Lakehouse(settings, spark).table("silver", "events").read()
    assert sorted(r.event_id for r in silver.collect()) == ["bom1", "x2"]


def test_duplicates_first_arrival_wins_counts_conserved_and_rerun_adds_nothing(spark, settings):
    folder = settings.storage.landing_events
    land(folder, "events-0001.jsonl", [json.dumps(event("a", amount=1.0)), json.dumps(event("b")), "garbage"])
    ingestor = Ingestor(settings, spark)
    first = ingestor.run_batch().feeds["events"]
    land(
        folder,
        "events-0002.jsonl",
        [json.dumps(event("a", amount=99.0)), json.dumps(event("c")), json.dumps(event("c"))],
    )
    second = ingestor.run_batch().feeds["events"]

    assert (first.bronze, first.silver, first.quarantined, first.duplicates) == (3, 2, 1, 0)
    assert (second.bronze, second.silver, second.quarantined, second.duplicates) == (3, 1, 0, 2)
    for counts in (first, second):
        assert counts.bronze == counts.silver + counts.quarantined + counts.duplicates

    lake = Lakehouse(settings, spark)
    silver = lake.table("silver", "events").read()
    assert sorted(r.event_id for r in silver.collect()) == ["a", "b", "c"]
    assert silver.where(F.col("event_id") == "a").first().amount == 1  # first arrival wins

    versions = {name: lake.table(*name.split(".")).version() for name in ("bronze.events", "silver.events")}
    again = ingestor.run_batch().feeds["events"]
    assert again.bronze == 0
    # The ingest tunes the session only for its own actions: the caller's conf is left alone.
    assert spark.conf.get("spark.sql.inMemoryColumnarStorage.compressed") == "true"
    assert {name: lake.table(*name.split(".")).version() for name in versions} == versions
    assert lake.table("bronze", "events").read().count() == 6


def test_labels_latest_wins(spark, settings):
    from medallion.silver import latest_labels

    land(
        settings.storage.landing_labels,
        "labels-0001.jsonl",
        [
            json.dumps({"event_id": "a", "is_fraud": False, "labeled_at": "2026-11-22T10:00:00Z"}),
            json.dumps({"event_id": "a", "is_fraud": True, "labeled_at": "2026-11-25T10:00:00Z"}),
            json.dumps({"event_id": "b", "is_fraud": "maybe", "labeled_at": "2026-11-22T10:00:00Z"}),
        ],
    )
    counts = Ingestor(settings, spark).run_batch().feeds["labels"]
    assert (counts.silver, counts.quarantined) == (2, 1)
    labels = Lakehouse(settings, spark).table("silver", "labels").read()
    latest = {row.event_id: row.is_fraud for row in latest_labels(labels).collect()}
    assert latest == {"a": True}


def test_replayed_stream_batch_rebuilds_the_same_silver_rows(spark, settings):
    """A micro-batch replayed after a crash writes nothing twice and still yields its rows."""
    from medallion.bronze import read_landing

    land(
        settings.storage.landing_events, "events-0001.jsonl", [json.dumps(event("a")), json.dumps(event("b"))]
    )
    ingestor = Ingestor(settings, spark)
    landed = read_landing(spark, settings.storage.landing_events)
    first = ingestor.process("events", landed, "stream:q1", 0)
    assert first.counts.silver == 2
    first.release()
    replay = ingestor.process("events", landed, "stream:q1", 0)
    assert replay.counts.skipped_replay
    assert sorted(r.event_id for r in replay.silver_rows.collect()) == ["a", "b"]
    replay.release()
    lake = Lakehouse(settings, spark)
    assert lake.table("bronze", "events").read().count() == 2
    assert lake.table("silver", "events").read().count() == 2


def test_a_file_another_writer_ingested_is_not_ingested_again(spark, settings):
    """The nightly run and the stream may both see a file: the first to ingest it owns it."""
    from medallion.bronze import read_landing

    folder = settings.storage.landing_events
    land(folder, "events-0001.jsonl", [json.dumps(event("a")), json.dumps(event("b"))])
    ingestor = Ingestor(settings, spark)
    ingestor.run_batch()
    land(folder, "events-0002.jsonl", [json.dumps(event("c"))])
    landed = read_landing(spark, folder)
    batch = ingestor.process("events", landed, "stream:q1", 0)
    assert (batch.counts.files, batch.counts.bronze, batch.counts.silver) == (1, 1, 1)
    batch.release()
    # A streaming micro-batch does not list its files; its rows name them.
    micro_batch = spark.createDataFrame(landed.collect(), landed.schema)
    replay = ingestor.process("events", micro_batch, "stream:q1", 1)
    assert (replay.counts.files, replay.counts.bronze) == (0, 0)
    replay.release()
    lake = Lakehouse(settings, spark)
    assert lake.table("bronze", "events").read().count() == 3
    assert sorted(r.event_id for r in lake.table("silver", "events").read().collect()) == ["a", "b", "c"]


def test_a_micro_batch_names_its_files_and_landing_times_in_its_counting_job(spark, settings):
    """The stream takes the files and their landing times from ingest's one summary job."""
    import os

    from medallion.bronze import read_landing

    folder = settings.storage.landing_events
    land(folder, "events-0001.jsonl", [json.dumps(event("a")), json.dumps(event("b"))])
    land(folder, "events-0002.jsonl", [json.dumps(event("c"))])
    landed = read_landing(spark, folder)
    micro_batch = spark.createDataFrame(landed.collect(), landed.schema)  # lists no files
    ingestor = Ingestor(settings, spark)
    batch = ingestor.process("events", micro_batch, "stream:q1", 0)
    batch.release()
    expected = {
        f"file:{Path(folder, name).resolve()}": int(os.stat(Path(folder, name)).st_mtime * 1_000_000) // 1000
        for name in ("events-0001.jsonl", "events-0002.jsonl")
    }
    assert {path: micros // 1000 for path, micros in batch.landed_us.items()} == expected
    assert (batch.counts.files, batch.counts.bronze, batch.counts.silver) == (2, 3, 3)


def test_a_small_batch_goes_on_in_one_partition(spark, settings):
    """A micro-batch's few rows are deduplicated and scored without a shuffle stage per step."""
    from medallion.bronze import read_landing

    folder = settings.storage.landing_events
    for n in range(3):
        land(folder, f"events-000{n}.jsonl", [json.dumps(event(f"e{n}")), json.dumps(event(f"e{n}"))])
    landed = read_landing(spark, folder).repartition(3)
    batch = Ingestor(settings, spark).process("events", landed, "stream:q1", 0, keep_silver=True)
    assert batch.silver_rows.rdd.getNumPartitions() == 1
    assert sorted(r.event_id for r in batch.silver_rows.collect()) == ["e0", "e1", "e2"]
    batch.release()


def test_the_parse_of_a_second_batch_compiles_no_new_code(spark, settings):
    """Only the batch id and ingest time differ between micro-batches; they must stay out of
    the parse's generated code, or every batch compiles (and runs unoptimised) the largest
    stage again."""
    from datetime import UTC, datetime, timedelta

    from medallion.bronze import read_landing
    from medallion.ingest.read import read_batch

    folder = settings.storage.landing_events
    land(folder, "events-0001.jsonl", [json.dumps(event("e1")), "not json"])
    ingestor = Ingestor(settings, spark)
    metrics = getattr(spark._jvm.org.apache.spark.metrics.source, "CodegenMetrics$").__getattr__("MODULE$")
    compiled = metrics.METRIC_COMPILATION_TIME()
    started = datetime.now(UTC)
    for batch_id in range(3):
        landed = read_landing(spark, folder)
        at = started + timedelta(seconds=batch_id)
        before = compiled.getCount()
        read = read_batch("events", landed, ingestor.expectations["events"], batch_id, "stream:q1:events", at)
        new_classes = compiled.getCount() - before
        assert read.summary.rows == 2 and read.summary.quarantined == 1
        stamps = read.parsed.rows.select("ingested_at").distinct().collect()
        assert [r.ingested_at.replace(tzinfo=UTC) for r in stamps] == [at]
        read.cached.unpersist()
        if batch_id > 0:
            assert new_classes == 0


def test_stream_ingest_equals_batch_ingest(spark, settings, tmp_path):
    """The same landed files through the streaming path give exactly the batch path's silver."""
    from chispa import assert_df_equality

    from medallion.config import load_settings
    from medallion.streaming.run import run_until_stopped

    lines = [json.dumps(event(f"e{i}", amount=float(i))) for i in range(5)] + [
        "bad line",
        json.dumps(event("e1")),
    ]
    land(settings.storage.landing_events, "events-0001.jsonl", lines[:4])
    land(settings.storage.landing_events, "events-0002.jsonl", lines[4:])
    Ingestor(settings, spark).run_batch()

    streamed = load_settings(
        environ={},
        directory=Path(__file__).resolve().parents[2] / "conf",
        overrides=[f"storage.root={tmp_path / 'streamed'}", "stream.max_files_per_trigger=1"],
    )
    land(streamed.storage.landing_events, "events-0001.jsonl", lines[:4])
    land(streamed.storage.landing_events, "events-0002.jsonl", lines[4:])
    for query in start_ingest(Ingestor(streamed, spark), {"availableNow": True}):
        run_until_stopped(query)

    def silver(conf):
        return Lakehouse(conf, spark).table("silver", "events").read().drop("source_file", "ingested_at")

    assert_df_equality(silver(settings), silver(streamed), ignore_row_order=True, ignore_nullable=True)
    quarantined = Lakehouse(streamed, spark).table("silver", "quarantine").read()
    assert [tuple(r.reasons) for r in quarantined.collect()] == [("not JSON",)]


def test_the_event_id_is_the_key_whatever_timestamp_a_resent_event_carries(spark, settings):
    folder = settings.storage.landing_events
    land(folder, "events-0001.jsonl", [json.dumps(event("a", event_ts="2026-11-20T23:59:00Z"))])
    ingestor = Ingestor(settings, spark)
    ingestor.run_batch()
    # Re-sent with a corrected timestamp the next day, and twice within one later file.
    land(
        folder,
        "events-0002.jsonl",
        [
            json.dumps(event("a", event_ts="2026-11-21T00:01:00Z")),
            json.dumps(event("b", event_ts="2026-11-21T08:00:00Z")),
            json.dumps(event("b", event_ts="2026-11-22T08:00:00Z")),
        ],
    )
    counts = ingestor.run_batch().feeds["events"]
    assert (counts.silver, counts.duplicates) == (1, 2)
    silver = Lakehouse(settings, spark).table("silver", "events").read()
    rows = [(r.event_id, str(r.event_date)) for r in silver.collect()]
    # One row per event id: the first arrival (a), any fixed one of two lines in one file (b).
    assert sorted(event_id for event_id, _ in rows) == ["a", "b"]
    assert ("a", "2026-11-20") in rows
