"""Reconciliation on real Delta tables: serving rows, the audit, re-runs, late events, compaction."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from medallion.reconcile import Reconciler
from medallion.schemas import PREDICTIONS_BATCH_SCHEMA, PREDICTIONS_SPEED_SCHEMA, SILVER_EVENTS_SCHEMA
from medallion.serving import get_score
from medallion.streaming.predictions import serving_rows as speed_serving_rows
from medallion.streaming.predictions import upsert_serving
from medallion.streaming.speed import SpeedLayer
from tests.conftest import HISTORY_END, TODAY

DAY = HISTORY_END
NIGHT = datetime.combine(TODAY, time(2, 0))
MORNING = datetime.combine(TODAY, time(9, 0))

# event_id -> (batch score and version, speed score and version); None where that layer has no row.
SCENARIO = {
    "agree": ((0.10, "2"), (0.10, "2")),
    "differ_same_version": ((0.20, "2"), (0.25, "2")),
    "differ_other_version": ((0.90, "2"), (0.40, "1")),
    "batch_only": ((0.30, "2"), None),
    "late": (None, (0.70, "2")),
    "rejected": (None, (0.80, "2")),  # silver does not hold it (quarantined or a duplicate there)
}


def silver_rows(spark, event_ids):
    rows = [
        (
            e,
            "card-1",
            "m-1",
            "grocery",
            Decimal("10.00"),
            "EUR",
            "DE",
            "pos",
            NIGHT - timedelta(hours=20),
            DAY,
            "f",
            NIGHT,
        )
        for e in event_ids
    ]
    return spark.createDataFrame(rows, SILVER_EVENTS_SCHEMA)


def batch_rows(spark, scenario):
    rows = [
        (e, DAY, b[0], b[0] >= 0.5, "fraud_model", b[1], None, 1, NIGHT, "pandas_udf")
        for e, (b, _s) in scenario.items()
        if b is not None
    ]
    return spark.createDataFrame(rows, PREDICTIONS_BATCH_SCHEMA)


def speed_rows(spark, scenario, scored_at=NIGHT - timedelta(hours=1), batch_id=0):
    rows = [
        (
            e,
            DAY,
            s[0],
            s[0] >= 0.5,
            "fraud_model",
            s[1],
            None,
            "champion",
            None,
            None,
            None,
            scored_at,
            batch_id,
            "pandas_udf",
        )
        for e, (_b, s) in scenario.items()
        if s is not None
    ]
    return spark.createDataFrame(rows, PREDICTIONS_SPEED_SCHEMA)


@pytest.fixture
def lake(spark, settings):
    """Silver, batch and speed tables holding the scenario; serving filled by the stream's upsert."""
    reconciler = Reconciler(settings, spark)
    reconciler.silver.append(silver_rows(spark, [e for e in SCENARIO if e != "rejected"]))
    reconciler.batch.append(batch_rows(spark, SCENARIO))
    speed = speed_rows(spark, SCENARIO)
    reconciler.speed.append(speed)
    upsert_serving(reconciler.serving, speed_serving_rows(speed.toArrow()))
    return reconciler


def serving_rows(reconciler):
    return {
        r.event_id: (r.score, r.model_version, r.source, r.missing_in_speed)
        for r in reconciler.serving.read().collect()
    }


@pytest.mark.parametrize(
    ("delta_engine", "rebuilt"),
    [("rs", True), ("rs", False), ("spark", False)],
    ids=["rs-rebuilt", "rs-merged", "spark-merged"],
)
def test_each_case_ends_as_the_expected_serving_row_and_audit_figures(lake, rebuilt, delta_engine):
    # The embedded engine rebuilds serving's day; delta-spark's path merges into it instead.
    lake.serving.replaces_partitions = rebuilt
    audit = lake.run(DAY)

    assert serving_rows(lake) == {
        "agree": (0.10, "2", "batch", False),
        "differ_same_version": (0.20, "2", "batch", False),
        "differ_other_version": (0.90, "2", "batch", False),
        "batch_only": (0.30, "2", "batch", True),
        "late": (0.70, "2", "speed", False),
    }
    figures = {k: v for k, v in audit.as_dict().items() if k not in ("mean_abs_diff", "max_abs_diff")}
    assert figures == {
        "event_date": DAY,
        "batch_version": lake.batch.version(),
        "speed_version": lake.speed.version(),
        "batch_rows": 4,
        "speed_rows": 5,
        "agreed": 1,
        "disagreed_same_version": 1,
        "disagreed_other_version": 1,
        "speed_only": 1,
        "batch_only": 1,
        "late_arrivals": 1,
        "rejected_speed": 1,
        "decision_flips": 1,
    }
    assert audit.mean_abs_diff == pytest.approx((0.0 + 0.05 + 0.5) / 3)
    assert audit.max_abs_diff == pytest.approx(0.5)
    written = lake.audit.read().collect()
    assert len(written) == 1 and written[0].rejected_speed == 1


@pytest.mark.parametrize("rebuilt", [True, False], ids=["rebuilt", "merged"])
def test_rerunning_with_the_same_inputs_changes_nothing(lake, rebuilt):
    lake.serving.replaces_partitions = rebuilt
    lake.run(DAY)
    serving_before, audit_before = serving_rows(lake), lake.audit.read().drop("reconciled_at").collect()
    serving_version = lake.serving.version()

    lake.run(DAY)

    assert serving_rows(lake) == serving_before
    assert lake.audit.read().drop("reconciled_at").collect() == audit_before
    assert lake.serving.read().count() == lake.serving.read().select("event_id").distinct().count() == 5
    # The same rows (a merge commits nothing new; a rebuilt day is a new version of the same rows).
    assert (
        lake.serving.read(version=serving_version)
        .drop("updated_at")
        .exceptAll(lake.serving.read().drop("updated_at"))
        .count()
        == 0
    )


def test_an_event_landing_after_the_night_is_folded_in_by_the_next_reconcile(spark, lake):
    lake.run(DAY)
    # The stream scores an event that landed after the night ran.
    lake.silver.append(silver_rows(spark, ["after_night"]))
    after = speed_rows(spark, {"after_night": (None, (0.65, "2"))}, scored_at=MORNING, batch_id=7)
    lake.speed.append(after)
    upsert_serving(lake.serving, speed_serving_rows(after.toArrow()))

    audit = lake.run(DAY)

    assert serving_rows(lake)["after_night"] == (0.65, "2", "speed", False)
    assert audit.late_arrivals == 2 and audit.speed_only == 2
    assert lake.audit.read().count() == 2  # a new speed version is a new reconciliation

    # The next night re-scores the day with every event: batch wins for the late one too.
    lake.batch.overwrite(
        batch_rows(spark, {**SCENARIO, "late": ((0.71, "2"), None), "after_night": ((0.66, "2"), None)}),
        where=f"event_date = DATE'{DAY.isoformat()}'",
    )
    audit = lake.run(DAY)
    serving = serving_rows(lake)
    assert serving["late"] == (0.71, "2", "batch", False)
    assert serving["after_night"] == (0.66, "2", "batch", False)
    assert audit.late_arrivals == 0 and audit.batch_rows == 6


def test_serving_lookup_reads_the_latest_version(spark, settings, lake):
    lake.run(DAY)
    row = get_score("differ_other_version", settings=settings, spark=spark)
    assert (row["score"], row["source"], row["model_version"]) == (0.90, "batch", "2")
    assert row["event_date"] == DAY and row["scored_at"].utcoffset() == timedelta(0)
    assert get_score("rejected", settings=settings, spark=spark) is None
    assert get_score("no-such-event", settings=settings, spark=spark) is None


def test_serve_lookup_command_prints_the_row_or_says_why_not(settings, lake, capsys):
    from medallion.cli import main

    lake.run(DAY)
    root = f"storage.root={settings.storage.root}"
    assert main(["serve", "lookup", "late", "--set", root]) == 0
    out = capsys.readouterr().out
    assert "gold.predictions: late" in out and "speed" in out and "0.7" in out
    assert main(["serve", "lookup", "rejected", "--set", root]) != 0
    assert "no serving row for event_id 'rejected'" in capsys.readouterr().err


def test_a_lookup_before_anything_served_says_what_writes_serving(spark, settings, capsys):
    from medallion.cli import main
    from medallion.errors import TableNotFoundError

    with pytest.raises(TableNotFoundError, match=r"gold.predictions does not exist .*\(medallion stream\)"):
        get_score("evt-1", settings=settings, spark=spark)
    assert main(["serve", "lookup", "evt-1", "--set", f"storage.root={settings.storage.root}"]) != 0
    err = capsys.readouterr().err
    assert "gold.predictions does not exist" in err and "Traceback" not in err


def test_reconciled_speed_rows_past_retention_are_compacted_away(spark, settings, lake):
    lake.run(DAY)
    newer = DAY + timedelta(days=5)
    for event_id in ("fresh-1", "fresh-2", "fresh-3"):  # three small files, one per stream batch
        lake.speed.append(
            speed_rows(spark, {event_id: (None, (0.5, "2"))}).withColumn("event_date", F.lit(newer))
        )

    def files() -> int:
        return lake.speed.read().select(F.input_file_name()).distinct().count()

    assert files() >= 3

    deleted = lake.compact_speed(today=DAY + timedelta(days=settings.reconcile.speed_retention_days + 1))

    # The batch-scored events' speed rows and the rejected one go; "late" is served from
    # its speed row (no batch row yet), so it stays. The newer day is not reconciled yet: kept.
    assert deleted == 4
    remaining = sorted(r.event_id for r in lake.speed.read().collect())
    assert remaining == ["fresh-1", "fresh-2", "fresh-3", "late"]
    assert files() == 2  # one per day after optimize
    assert lake.serving.read().count() == 5  # serving keeps what it serves

    # Reconciling the compacted day again serves every event as before, "late" included.
    # (missing_in_speed then turns true: the batch-scored events' speed rows are gone.)
    def served():
        return {event: row[:3] for event, row in serving_rows(lake).items()}

    before = served()
    lake.run(DAY)
    assert served() == before and "late" in before
    # Compacting again finds nothing more to delete.
    assert lake.compact_speed(today=DAY + timedelta(days=settings.reconcile.speed_retention_days + 1)) == 0
    operations = [
        (h.get("operationParameters") or {}).get("writeOperation") or h.get("operation")
        for h in lake.speed.history()
    ]
    assert "MERGE" in operations and "OPTIMIZE" in operations


@pytest.mark.heavy
@pytest.mark.usefixtures("delta_engine")
def test_a_stream_and_a_reconcile_running_together_leave_every_event_once(
    spark, lake_with_champion, tmp_path
):
    """The night has scored the first files; the stream scores the rest while reconcile runs."""
    import shutil
    import threading

    from medallion.batch import NightlyBatch
    from medallion.datagen import generate_history
    from medallion.tables import Lakehouse

    day = HISTORY_END
    settings = lake_with_champion(
        "datagen.files_per_day=6",
        "datagen.late_fraction=0",
        "stream.trigger.kind=processingTime",
        "stream.trigger.interval=1 second",
        "stream.max_files_per_trigger=1",
    )
    generate_history(settings, days=1, events_per_day=300, end_date=day, progress=False)
    landing = Path(settings.storage.landing_events)
    held_back = tmp_path / "held_back"
    held_back.mkdir()
    for path in sorted(landing.glob("*.jsonl"))[3:]:
        shutil.move(path, held_back / path.name)
    NightlyBatch(settings, spark).run(day)  # ingests, scores and reconciles the first three files

    speed = SpeedLayer(settings, spark, log=lambda _: None)
    query = speed.start()
    reconciler = Reconciler(settings, spark)
    stop = threading.Event()
    errors: list[BaseException] = []
    runs = 0

    def reconcile_until_stopped() -> None:
        nonlocal runs
        try:
            while not stop.is_set():
                reconciler.run(day)
                runs += 1
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    worker = threading.Thread(target=reconcile_until_stopped)
    worker.start()
    try:
        for path in sorted(held_back.glob("*.jsonl")):
            shutil.move(path, landing / path.name)
        query.processAllAvailable()
    finally:
        stop.set()
        worker.join(timeout=300)
        query.stop()
        speed.stopped()
    assert not errors, errors
    assert runs >= 1
    reconciler.run(day)

    lake = Lakehouse(settings, spark)
    silver = lake.table("silver", "events").read().where(F.col("event_date") == day)
    serving = lake.table("gold", "predictions").read()
    assert serving.count() == serving.select("event_id").distinct().count() == silver.count()
    assert serving.join(silver, "event_id", "left_anti").count() == 0
    sources = {r.source: r["count"] for r in serving.groupBy("source").count().collect()}
    batch_rows = lake.table("gold", "predictions_batch").read().count()
    assert sources == {"batch": batch_rows, "speed": silver.count() - batch_rows}


def test_reconcile_command_reconciles_prints_the_audit_and_compacts(settings, lake, capsys):
    from medallion.cli import main

    root = f"storage.root={settings.storage.root}"
    # The morning after: the day is inside the speed retention, nothing is compacted.
    assert main(["reconcile", "--date", DAY.isoformat(), "--today", TODAY.isoformat(), "--set", root]) == 0
    out = capsys.readouterr().out
    assert "reconciliation" in out and "compacted gold.predictions_speed: 0 superseded rows" in out
    # A figure per line, the date as a column: readable on an 80-column terminal.
    lines = {line.split()[1]: line.split()[3] for line in out.splitlines() if line.count("│") == 3}
    assert DAY.isoformat() in out and lines["batch_rows"] == "4" and lines["rejected_speed"] == "1"
    assert serving_rows(lake)["batch_only"] == (0.30, "2", "batch", True)
    assert lake.audit.read().count() == 1

    # Past the retention by the clock: the superseded and rejected speed rows go, "late" stays.
    later = DAY + timedelta(days=settings.reconcile.speed_retention_days + 1)
    assert main(["reconcile", "--date", DAY.isoformat(), "--today", later.isoformat(), "--set", root]) == 0
    assert "compacted gold.predictions_speed: 4 superseded rows" in capsys.readouterr().out
    assert sorted(r.event_id for r in lake.speed.read().collect()) == ["late"]
