"""The reconciliation rules on one day's predictions, without any table I/O."""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import functions as F

from medallion.reconcile import NO_PARTIAL_DEDUPE, audit_row, compare, latest_speed_rows
from medallion.spark import session_conf

DAY = date(2026, 11, 20)
T0 = datetime(2026, 11, 21, 2, 0)
T1 = datetime(2026, 11, 21, 3, 0)


def batch_rows(spark, rows):
    return spark.createDataFrame(
        [(e, DAY, s, s >= 0.5, v, T0) for e, s, v in rows],
        "event_id string, event_date date, score double, decision boolean, model_version string, scored_at timestamp",
    )


def speed_rows(spark, rows):
    return spark.createDataFrame(
        [(e, DAY, s, s >= 0.5, v, t, b) for e, s, v, t, b in rows],
        "event_id string, event_date date, score double, decision boolean, model_version string, "
        "scored_at timestamp, batch_id long",
    )


def test_each_case_gets_its_outcome_and_figures(spark):
    batch = batch_rows(
        spark,
        [
            ("agree", 0.10, "2"),
            ("differ_same", 0.20, "2"),
            ("differ_version", 0.90, "2"),
            ("batch_only", 0.3, "2"),
        ],
    )
    speed = speed_rows(
        spark,
        [
            ("agree", 0.10, "2", T0, 1),
            ("differ_same", 0.25, "2", T0, 1),
            ("differ_version", 0.40, "1", T0, 1),
            ("late", 0.70, "2", T1, 2),
            ("rejected", 0.80, "2", T0, 1),
        ],
    )
    silver_ids = spark.createDataFrame(
        [(e,) for e in ("agree", "differ_same", "differ_version", "batch_only", "late")], "event_id string"
    )

    compared = compare(batch, speed, silver_ids, tolerance=1e-6)
    outcomes = {row.event_id: row.outcome for row in compared.collect()}
    assert outcomes == {
        "agree": "agreed",
        "differ_same": "disagreed_same_version",
        "differ_version": "disagreed_other_version",
        "batch_only": "batch_only",
        "late": "speed_only",
        "rejected": "rejected",
    }

    figures = audit_row(compared, batch_ran=True)
    assert figures["batch_rows"] == 4
    assert figures["speed_rows"] == 5
    assert figures["agreed"] == 1
    assert figures["disagreed_same_version"] == 1
    assert figures["disagreed_other_version"] == 1
    assert figures["batch_only"] == 1
    assert figures["speed_only"] == 1
    assert figures["late_arrivals"] == 1
    assert figures["rejected_speed"] == 1
    assert figures["decision_flips"] == 1  # differ_version: 0.9 vs 0.4 crosses 0.5
    assert abs(figures["max_abs_diff"] - 0.5) < 1e-12
    assert abs(figures["mean_abs_diff"] - (0 + 0.05 + 0.5) / 3) < 1e-12


def test_before_the_night_runs_speed_rows_are_not_late(spark):
    speed = speed_rows(spark, [("a", 0.1, "1", T0, 0)])
    empty_batch = batch_rows(spark, [])
    silver_ids = spark.createDataFrame([("a",)], "event_id string")
    figures = audit_row(compare(empty_batch, speed, silver_ids, 1e-6), batch_ran=False)
    assert figures["speed_only"] == 1
    assert figures["late_arrivals"] == 0


def test_latest_speed_row_wins(spark):
    speed = speed_rows(spark, [("a", 0.1, "1", T0, 0), ("a", 0.2, "2", T1, 3), ("b", 0.3, "1", T0, 0)])
    latest = {row.event_id: row.score for row in latest_speed_rows(speed).collect()}
    assert latest == {"a": 0.2, "b": 0.3}
    assert latest_speed_rows(speed).where(F.col("event_id") == "a").count() == 1


def test_latest_speed_row_wins_without_the_partial_dedupe(spark):
    # Reconcile turns off Spark's map-side pre-dedupe; the newest row must still win.
    speed = speed_rows(spark, [("a", 0.1, "1", T0, 0), ("a", 0.2, "2", T1, 3), ("b", 0.3, "1", T0, 0)])
    with session_conf(spark, NO_PARTIAL_DEDUPE):
        latest = sorted(
            (row.event_id, row.score) for row in latest_speed_rows(speed.repartition(2)).collect()
        )
    assert latest == [("a", 0.2), ("b", 0.3)]


def test_observed_audit_is_none_until_an_action_reads_the_frame(spark):
    from pyspark.sql import Observation

    from medallion.observation import observed

    audited = Observation()
    frame = spark.range(5).observe(audited, F.count(F.lit(1)).alias("rows"))
    # A merge that never read its source must not block the audit.
    assert observed(audited, wait_s=0.5) is None
    frame.collect()
    assert observed(audited) == {"rows": 5}
