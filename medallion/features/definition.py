"""The one feature definition, used by training, the nightly batch and the stream.

Usage::

    features = build_features(events, profiles)                  # join path (batch, micro-batch)
    features = profile_lookup_features(events, profiles_pandas)  # map-only path (continuous mode)

Both paths compute the same values from the same Columns (:func:`_feature_columns`: the
event's own features and those from its card's profile); only the way the profile is found
differs.
"""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd
from pyspark import SparkContext
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from medallion.schemas import FEATURE_SCHEMA, KEY_COLUMNS

PROFILE_COLUMNS = (
    "txn_count_30d",
    "amount_mean_30d",
    "amount_std_30d",
    "distinct_merchants_30d",
    "usual_country",
)
OUTPUT_COLUMNS = (*KEY_COLUMNS, *FEATURE_SCHEMA.fieldNames(), "amount", "country")
# Carried from the events when they have them: where a row came from and, for the continuous
# path's unsplit parse, why it did not parse (medallion.streaming.continuous).
# kafka_timestamp: a Kafka record's own time, which the stream measures its latency from.
PASSED_THROUGH = ("source_file", "ingested_at", "reasons", "raw", "kafka_timestamp")


@functools.lru_cache(maxsize=8)
def _feature_columns(context: SparkContext) -> dict[str, Column]:
    """:func:`feature_math` as Spark Columns.

    Built once per JVM: building them is about 20 ms of py4j calls, which a stream's
    micro-batch would otherwise pay again (keyed on the SparkContext, as foreachBatch hands
    every micro-batch a new session object).
    """
    return feature_math(F)


def feature_math(fn) -> dict[str, Any]:
    """The event's own features (log amount, hour and day of week, UTC) and its profile's.

    ``fn`` is a namespace with the few ``pyspark.sql.functions`` used here (``col``,
    ``lit``, ``log1p``, ``hour``, ``dayofweek``, ``coalesce``, ``when``): with
    ``pyspark.sql.functions`` it gives Columns; the online service passes
    :mod:`medallion.serving.rowmath`, which evaluates the same definition on one request.
    """
    amount = fn.col("amount").cast("double")
    return {
        "log_amount": fn.log1p(amount),
        "hour": fn.hour(fn.col("event_ts")).cast("double"),
        "day_of_week": fn.dayofweek(fn.col("event_ts")).cast("double"),
        **_profile_columns(amount, fn),
    }


def _profile_columns(amount, fn) -> dict[str, Any]:
    """Features from the card's profile; a card without history gets neutral values."""
    has_history = fn.coalesce(fn.col("txn_count_30d"), fn.lit(0.0)) > 0
    std = fn.col("amount_std_30d")
    zscore = fn.when(has_history & (std > 0), (amount - fn.col("amount_mean_30d")) / std).otherwise(
        fn.lit(0.0)
    )
    foreign = has_history & (fn.col("country") != fn.col("usual_country"))
    return {
        "amount_zscore": zscore,
        "is_foreign": fn.when(foreign, fn.lit(1.0)).otherwise(fn.lit(0.0)),
        "card_txn_count_30d": fn.coalesce(fn.col("txn_count_30d"), fn.lit(0.0)),
        "card_amount_mean_30d": fn.coalesce(fn.col("amount_mean_30d"), fn.lit(0.0)),
        "card_amount_std_30d": fn.coalesce(fn.col("amount_std_30d"), fn.lit(0.0)),
        "card_distinct_merchants_30d": fn.coalesce(fn.col("distinct_merchants_30d"), fn.lit(0.0)),
    }


def _finish(with_profile: DataFrame) -> DataFrame:
    out = with_profile.withColumns(_feature_columns(with_profile.sparkSession.sparkContext))
    keep = [c for c in OUTPUT_COLUMNS if c in out.columns] + [c for c in PASSED_THROUGH if c in out.columns]
    return out.select(*keep)


def build_features(events: DataFrame, profiles: DataFrame | None) -> DataFrame:
    """Each event joined to its card's profile for ``profile_date = event_date`` (point in time)."""
    if profiles is None:
        with_profile = events.withColumns({name: F.lit(None).cast("double") for name in PROFILE_COLUMNS[:-1]})
        with_profile = with_profile.withColumn("usual_country", F.lit(None).cast("string"))
    else:
        lookup = profiles.select("card_id", F.col("profile_date").alias("event_date"), *PROFILE_COLUMNS)
        with_profile = events.join(lookup, ["card_id", "event_date"], "left")
    return _finish(with_profile)


PROFILE_LOOKUP_CLASS = "io.medallion.scoring.ProfileLookup"


def profile_lookup_features(
    events: DataFrame, profiles: pd.DataFrame | None, form: str = "auto"
) -> DataFrame:
    """The same features with map-only operations, for Spark's continuous mode (no joins).

    ``profiles`` is a pandas snapshot of gold.card_profiles, shipped to executors inside one
    function; each row looks up ``(card_id, event_date)``. The function is the scoring jar's
    ``ProfileLookup`` where the session has the jar (a hash map in the JVM), else a pandas UDF
    (a Python worker, and a round trip per Arrow batch). ``form``: ``"auto"`` (as said),
    ``"jvm"`` or ``"python"``.
    """
    from pyspark.sql.functions import pandas_udf
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    from medallion.jvm_udf import jvm_function

    if form not in ("auto", "jvm", "python"):
        raise ValueError(f"form must be 'auto', 'jvm' or 'python', got {form!r}")
    in_jvm = (
        jvm_function(events.sparkSession, PROFILE_LOOKUP_CLASS, profile_lookup_text(profiles))
        if form != "python"
        else None
    )
    if form == "jvm" and in_jvm is None:
        raise ValueError("form='jvm' needs the scoring jar on the session: python -m medallion.jvm fetch")
    if in_jvm is not None:
        found = in_jvm(F.col("card_id"), F.col("event_date").cast("string"))
        return _finish(
            events.withColumn("_profile", found)
            .select("*", *[F.col(f"_profile.{c}").alias(c) for c in PROFILE_COLUMNS])
            .drop("_profile")
        )
    table = (
        {}
        if profiles is None or profiles.empty
        else {
            (row.card_id, row.profile_date): tuple(getattr(row, c) for c in PROFILE_COLUMNS)
            for row in profiles.itertuples(index=False)
        }
    )
    schema = StructType(
        [StructField(c, DoubleType()) for c in PROFILE_COLUMNS[:-1]]
        + [StructField("usual_country", StringType())]
    )

    @pandas_udf(schema)
    def lookup(card_id: pd.Series, event_date: pd.Series) -> pd.DataFrame:
        found = [
            table.get((card, day), (None,) * len(PROFILE_COLUMNS))
            for card, day in zip(card_id, event_date, strict=True)
        ]
        return pd.DataFrame(found, columns=list(PROFILE_COLUMNS))

    with_profile = (
        events.withColumn("_profile", lookup(F.col("card_id"), F.col("event_date")))
        .select("*", *[F.col(f"_profile.{c}").alias(c) for c in PROFILE_COLUMNS])
        .drop("_profile")
    )
    return _finish(with_profile)


def profile_lookup_text(profiles: pd.DataFrame | None) -> str:
    """A snapshot of gold.card_profiles as the text ``ProfileLookup.parse`` reads (its doc is
    the format): strings URL-encoded, doubles in exact hex, ``-`` for null."""
    import math
    from urllib.parse import quote

    from medallion.jvm_udf import exact_double

    def text(value, is_double: bool) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"  # pandas holds a null as None, or as NaN in a column of doubles
        return exact_double(float(value)) if is_double else quote(str(value), safe="")

    kinds = [(c, c != "usual_country") for c in PROFILE_COLUMNS]
    head = "\t".join(["medallion-profiles 1", *[f"{c}:{'double' if d else 'string'}" for c, d in kinds]])
    lines = [head]
    if profiles is not None:
        for row in profiles[["card_id", "profile_date", *PROFILE_COLUMNS]].itertuples(index=False):
            if row[0] is None or row[1] is None:
                continue
            day = row[1].date() if isinstance(row[1], pd.Timestamp) else row[1]
            values = [text(v, d) for v, (_, d) in zip(row[2:], kinds, strict=True)]
            lines.append("\t".join([quote(str(row[0]), safe=""), day.isoformat(), *values]))
    return "\n".join(lines)
