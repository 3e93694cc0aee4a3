"""Gold aggregates: per-card profiles (the batch layer's slow history) and the training set.

Usage::

    profiles = card_profiles(silver_events, [date(2026, 11, 20)])
    labelled = training_set(features, latest_labels(silver_labels))

A profile for day D uses only events strictly before D, in ``[D - 30 days, D)``: a feature
built from it can never see its own event or the future.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

PROFILE_WINDOW_DAYS = 30


def card_profiles(silver_events: DataFrame, days: Sequence[date]) -> DataFrame:
    """One row per (card, profile_date) for each day in ``days`` that the card has history for."""
    spark = silver_events.sparkSession
    wanted = spark.createDataFrame([(d,) for d in days], "profile_date date")
    history = silver_events.join(
        F.broadcast(wanted),
        (F.col("event_date") < F.col("profile_date"))
        & (F.col("event_date") >= F.date_sub(F.col("profile_date"), PROFILE_WINDOW_DAYS)),
    )
    amount = F.col("amount").cast("double")
    stats = history.groupBy("card_id", "profile_date").agg(
        F.count("*").cast("double").alias("txn_count_30d"),
        F.avg(amount).alias("amount_mean_30d"),
        F.coalesce(F.stddev_samp(amount), F.lit(0.0)).alias("amount_std_30d"),
        F.countDistinct("merchant_id").cast("double").alias("distinct_merchants_30d"),
    )
    # Most frequent country; ties go to the alphabetically first so re-runs agree.
    by_country = history.groupBy("card_id", "profile_date", "country").count()
    most_frequent = Window.partitionBy("card_id", "profile_date").orderBy(F.col("count").desc(), "country")
    usual = (
        by_country.withColumn("_rank", F.row_number().over(most_frequent))
        .where("_rank = 1")
        .select("card_id", "profile_date", F.col("country").alias("usual_country"))
    )
    return stats.join(usual, ["card_id", "profile_date"])


def training_set(features: DataFrame, latest_labels: DataFrame) -> DataFrame:
    """Features of labelled events, with ``is_fraud`` as a double 0/1 and ``labeled_at``."""
    labels = latest_labels.select(
        "event_id", F.col("is_fraud").cast("double").alias("is_fraud"), "labeled_at"
    )
    return features.join(labels, "event_id")
