"""Gold tables for a day through real Delta tables: idempotent per day, other days untouched."""

from __future__ import annotations

import json
from datetime import date

import pytest
from pyspark.sql import functions as F

from medallion.features import FeatureStore
from medallion.ingest import Ingestor
from tests.ingest.test_ingest import event, land


@pytest.mark.usefixtures("delta_engine")
def test_build_day_is_idempotent_and_feeds_the_training_set(spark, settings):
    land(
        settings.storage.landing_events,
        "events-0001.jsonl",
        [
            json.dumps(event("a", event_ts="2026-11-19T10:00:00+00:00")),
            json.dumps(event("b", event_ts="2026-11-20T10:00:00+00:00", amount=40.0)),
            json.dumps(event("c", event_ts="2026-11-21T10:00:00+00:00")),
        ],
    )
    land(
        settings.storage.landing_labels,
        "labels-0001.jsonl",
        [json.dumps({"event_id": "b", "is_fraud": True, "labeled_at": "2026-11-23T00:00:00Z"})],
    )
    Ingestor(settings, spark).run_batch()
    store = FeatureStore(settings, spark)
    first = store.build(date(2026, 11, 20))
    store.build(date(2026, 11, 21))
    again = store.build(date(2026, 11, 20))

    features = store.table("features").read()
    assert first.features == again.features == 1
    assert sorted(r.event_id for r in features.collect()) == ["b", "c"]
    b = features.where("event_id = 'b'").first()
    assert b.card_txn_count_30d == 1.0  # only 'a', the day before
    profiles = store.table("card_profiles").read()
    assert profiles.where(F.col("profile_date") == date(2026, 11, 21)).first().txn_count_30d == 2.0

    rows, _ = store.refresh_training_set()
    assert rows == 1
    labelled = store.table("training_set").read().first()
    assert (labelled.event_id, labelled.is_fraud) == ("b", 1.0)
    assert store.event_dates() == [date(2026, 11, 19), date(2026, 11, 20), date(2026, 11, 21)]


@pytest.mark.heavy
@pytest.mark.usefixtures("delta_engine")
def test_a_range_build_equals_building_each_day(spark, settings):
    """``build(first, last)`` (a backfill in one pass) writes what day-by-day builds write."""
    from chispa import assert_df_equality

    land(
        settings.storage.landing_events,
        "events-0001.jsonl",
        [
            json.dumps(
                event(
                    f"e{day}{n}",
                    card_id=f"card-{n % 3}",
                    amount=10.0 + n * day,
                    event_ts=f"2026-11-{day}T{8 + n:02d}:00:00+00:00",
                )
            )
            for day in (18, 19, 20, 21)
            for n in range(4)
        ],
    )
    Ingestor(settings, spark).run_batch()
    store = FeatureStore(settings, spark)
    for day in (19, 20, 21):
        store.build(date(2026, 11, day))
    by_day = {name: store.table(name).read().toPandas() for name in ("features", "card_profiles")}

    ranged = store.build(date(2026, 11, 19), date(2026, 11, 21))
    assert (ranged.days, ranged.features) == ("2026-11-19..2026-11-21", 12)
    for name, expected in by_day.items():
        actual = store.table(name).read()
        assert_df_equality(
            actual,
            spark.createDataFrame(expected, actual.schema),
            ignore_row_order=True,
            ignore_nullable=True,
        )
