"""Gold profiles and features: point in time, and the map-only lookup equals the join."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from medallion.features import build_features, profile_lookup_features
from medallion.features.gold import card_profiles
from medallion.schemas import FEATURE_SCHEMA


def events(spark, rows):
    return spark.createDataFrame(
        [
            (e, c, "m-" + e, "grocery", Decimal(str(a)), "EUR", country, "pos", ts, ts.date())
            for e, c, a, country, ts in rows
        ],
        "event_id string, card_id string, merchant_id string, merchant_category string, amount decimal(18,2), "
        "currency string, country string, channel string, event_ts timestamp, event_date date",
    )


HISTORY = [
    ("h1", "c1", 10.0, "DE", datetime(2026, 11, 18, 9)),
    ("h2", "c1", 20.0, "DE", datetime(2026, 11, 19, 9)),
    ("x1", "c1", 500.0, "US", datetime(2026, 11, 20, 1)),  # the event being scored
    ("x2", "c1", 9000.0, "NG", datetime(2026, 11, 20, 23)),  # later the same day: must not leak
    ("f1", "c1", 7000.0, "RU", datetime(2026, 11, 21, 3)),  # the future: must not leak
    ("n1", "c2", 30.0, "FR", datetime(2026, 11, 20, 12)),  # a card with no history
]


def test_profiles_use_only_events_strictly_before_the_day(spark):
    silver = events(spark, HISTORY)
    profile = card_profiles(silver, [date(2026, 11, 20)]).where("card_id = 'c1'").first()
    assert profile.txn_count_30d == 2
    assert profile.amount_mean_30d == 15.0
    assert profile.usual_country == "DE"
    assert card_profiles(silver, [date(2026, 11, 20)]).where("card_id = 'c2'").count() == 0


def test_features_are_point_in_time(spark):
    silver = events(spark, HISTORY)
    day = date(2026, 11, 20)
    features = build_features(silver.where(F.col("event_date") == day), card_profiles(silver, [day]))
    x1 = features.where("event_id = 'x1'").first()
    assert x1.card_txn_count_30d == 2  # h1, h2 only: not x1 itself, x2 or f1
    assert x1.card_amount_mean_30d == 15.0
    assert abs(x1.amount_zscore - (500 - 15) / 7.0710678118654755) < 1e-9
    assert x1.is_foreign == 1.0
    assert x1.hour == 1.0
    n1 = features.where("event_id = 'n1'").first()
    assert (n1.card_txn_count_30d, n1.is_foreign, n1.amount_zscore) == (0.0, 0.0, 0.0)
    for field in FEATURE_SCHEMA.fields:
        assert features.schema[field.name].dataType == field.dataType


def test_every_micro_batch_builds_its_features_from_columns_made_once(spark):
    # foreachBatch hands each micro-batch a new session object; the Columns are the JVM's.
    from medallion.features.definition import _feature_columns

    day = date(2026, 11, 20)
    build_features(events(spark, HISTORY), None)
    built = _feature_columns.cache_info().misses
    for _ in range(3):
        batch = spark.newSession()
        features = build_features(events(batch, HISTORY).where(F.col("event_date") == day), None)
        assert features.where("event_id = 'x1'").first().hour == 1.0
    assert _feature_columns.cache_info().misses == built


@pytest.mark.parametrize("form", ["jvm", "python"])
def test_map_only_lookup_equals_the_join(spark, form):
    odd = [  # a card id the lookup's text must carry intact, and a card with no profile
        ("o1", "c\t%+ü 1", 120.0, "FR", datetime(2026, 11, 18, 9)),
        ("o2", "c\t%+ü 1", 30.0, "DE", datetime(2026, 11, 20, 10)),
        ("o3", "never-seen", 5.0, "DE", datetime(2026, 11, 21, 11)),
    ]
    silver = events(spark, HISTORY + odd)
    days = [date(2026, 11, 20), date(2026, 11, 21)]
    profiles = card_profiles(silver, days)
    scored_events = silver.where(F.col("event_date").isin(*days))
    joined = build_features(scored_events, profiles)
    mapped = profile_lookup_features(scored_events, profiles.toPandas(), form=form)
    assert_df_equality(joined, mapped, ignore_row_order=True, ignore_nullable=True)
    assert mapped.where("event_id = 'o2'").first().card_txn_count_30d == 1.0


def test_profiles_from_daily_totals_equal_aggregating_every_event_of_the_window(spark):
    from chispa import assert_approx_df_equality

    from medallion.features.gold import PROFILE_WINDOW_DAYS

    rows = [
        (
            f"e{i}",
            f"c{i % 7}",
            (i * 37 % 1000) / 7.0,
            "DE" if i % 5 else "FR",
            datetime(2026, 11, 1 + i % 25, i % 24),
        )
        for i in range(600)
    ]
    silver = events(spark, rows)
    days = [date(2026, 11, 3), date(2026, 11, 15), date(2026, 11, 26)]
    expected = None
    for day in days:
        window = silver.where(
            (F.col("event_date") < F.lit(day))
            & (F.col("event_date") >= F.date_sub(F.lit(day), PROFILE_WINDOW_DAYS))
        )
        amount = F.col("amount").cast("double")
        one_day = window.groupBy("card_id").agg(
            F.lit(day).alias("profile_date"),
            F.count("*").cast("double").alias("txn_count_30d"),
            F.avg(amount).alias("amount_mean_30d"),
            F.coalesce(F.stddev_samp(amount), F.lit(0.0)).alias("amount_std_30d"),
            F.countDistinct("merchant_id").cast("double").alias("distinct_merchants_30d"),
            F.mode("country").alias("usual_country"),  # no ties here: DE outnumbers FR
        )
        expected = one_day if expected is None else expected.unionByName(one_day)
    assert_approx_df_equality(
        card_profiles(silver, days).orderBy("card_id", "profile_date"),
        expected.orderBy("card_id", "profile_date"),
        precision=1e-9,
        ignore_nullable=True,
    )


def test_usual_country_ties_go_to_the_alphabetically_first(spark):
    tied = [
        ("t1", "c9", 10.0, "FR", datetime(2026, 11, 18, 9)),
        ("t2", "c9", 10.0, "DE", datetime(2026, 11, 19, 9)),
        ("t3", "c9", 10.0, "NL", datetime(2026, 11, 19, 10)),
        ("t4", "c9", 10.0, "NL", datetime(2026, 11, 17, 10)),
        ("t5", "c9", 10.0, "DE", datetime(2026, 11, 16, 10)),
    ]
    profile = card_profiles(events(spark, tied), [date(2026, 11, 20)]).first()
    assert (profile.usual_country, profile.txn_count_30d) == ("DE", 5.0)
