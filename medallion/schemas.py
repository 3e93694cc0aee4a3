"""The declared shapes of medallion's data: landing records, layer tables and model features.

One place, so the generator, the layers, the model and the stream agree on every column.
"""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

# ---- landing zone vocabularies (what a valid record may contain)
CHANNELS = ("pos", "ecom", "atm")
CURRENCIES = ("EUR", "USD", "GBP", "CHF", "SEK", "DKK", "NOK", "PLN", "CZK", "JPY", "CAD", "AUD")
COUNTRIES = (
    "DE",
    "FR",
    "NL",
    "BE",
    "ES",
    "IT",
    "GB",
    "CH",
    "SE",
    "DK",
    "NO",
    "PL",
    "CZ",
    "US",
    "JP",
    "CA",
    "AU",
    "BR",
    "NG",
    "RU",
)
MERCHANT_CATEGORIES = (
    "grocery",
    "restaurant",
    "fuel",
    "pharmacy",
    "apparel",
    "transport",
    "utilities",
    "travel",
    "electronics",
    "jewelry",
    "gaming",
    "money_transfer",
)
RISKY_CATEGORIES = ("electronics", "jewelry", "gaming", "money_transfer")
MAX_LINE_BYTES = 4096  # a landing line longer than this is quarantined as oversized
# A line this long is not even read: the reader skips it (memory stays bounded whatever a file
# holds) and ingest records it from the file's bytes that no line accounts for.
UNREAD_LINE_BYTES = 1 << 20

# ---- landing records as JSON text: every field a string, typed by silver
EVENT_FIELDS = (
    "event_id",
    "card_id",
    "merchant_id",
    "merchant_category",
    "amount",
    "currency",
    "country",
    "channel",
    "event_ts",
)
LABEL_FIELDS = ("event_id", "is_fraud", "labeled_at")

# ---- bronze: the raw line as received, plus where and when it arrived
BRONZE_SCHEMA = StructType(
    [
        StructField("raw", StringType(), True),
        StructField("source_file", StringType(), True),
        StructField("ingested_at", TimestampType(), True),
        StructField("batch_id", LongType(), True),
        # Which writer (a nightly run, or a stream's checkpoint) committed the row: lets a
        # replayed micro-batch recognise the files it wrote itself before a crash.
        StructField("ingest_app", StringType(), True),
        # Where a Kafka record came from (null for a landing file's line).
        StructField("kafka_topic", StringType(), True),
        StructField("kafka_partition", IntegerType(), True),
        StructField("kafka_offset", LongType(), True),
        StructField("kafka_timestamp", TimestampType(), True),
    ]
)

# ---- silver
SILVER_EVENTS_SCHEMA = StructType(
    [
        StructField("event_id", StringType(), False),
        StructField("card_id", StringType(), False),
        StructField("merchant_id", StringType(), False),
        StructField("merchant_category", StringType(), False),
        StructField("amount", DecimalType(18, 2), False),
        StructField("currency", StringType(), False),
        StructField("country", StringType(), False),
        StructField("channel", StringType(), False),
        StructField("event_ts", TimestampType(), False),
        StructField("event_date", DateType(), False),
        StructField("source_file", StringType(), True),
        StructField("ingested_at", TimestampType(), True),
    ]
)

SILVER_LABELS_SCHEMA = StructType(
    [
        StructField("event_id", StringType(), False),
        StructField("is_fraud", BooleanType(), False),
        StructField("labeled_at", TimestampType(), False),
        StructField("source_file", StringType(), True),
        StructField("ingested_at", TimestampType(), True),
    ]
)

QUARANTINE_SCHEMA = StructType(
    [
        StructField("feed", StringType(), False),  # 'events' | 'labels' | 'predictions' (unscorable rows)
        StructField("reasons", ArrayType(StringType()), False),
        StructField("raw", StringType(), True),
        StructField("source_file", StringType(), True),
        StructField("ingested_at", TimestampType(), True),
        StructField("quarantined_at", TimestampType(), True),
    ]
)

# ---- gold features: the one contract between features, training, batch and stream
NUMERIC_FEATURES = (
    "log_amount",
    "hour",
    "day_of_week",
    "amount_zscore",
    "is_foreign",
    "card_txn_count_30d",
    "card_amount_mean_30d",
    "card_amount_std_30d",
    "card_distinct_merchants_30d",
)
CATEGORICAL_FEATURES = ("channel", "merchant_category")
FEATURE_COLUMNS = NUMERIC_FEATURES + CATEGORICAL_FEATURES
KEY_COLUMNS = ("event_id", "card_id", "event_ts", "event_date")

FEATURE_SCHEMA = StructType(
    [StructField(name, DoubleType(), True) for name in NUMERIC_FEATURES]
    + [StructField(name, StringType(), True) for name in CATEGORICAL_FEATURES]
)
LABEL_COLUMN = "is_fraud"

# ---- predictions: batch (truth), speed (fresh), serving (what readers see), audit
_PREDICTION_FIELDS = [
    StructField("event_id", StringType(), False),
    StructField("event_date", DateType(), False),
    StructField("score", DoubleType(), False),
    StructField("decision", BooleanType(), False),  # score >= model.decision_threshold
    StructField("model_name", StringType(), False),
    StructField("model_version", StringType(), False),
    StructField("run_id", StringType(), True),
]

# Which scoring path computed the score: 'pandas_udf' | 'native' (model.scoring). Last and
# nullable, so a table written before it existed takes it (its rows null) when opened.
SCORED_BY = StructField("scored_by", StringType(), True)

PREDICTIONS_BATCH_SCHEMA = StructType(
    [
        *_PREDICTION_FIELDS,
        StructField("feature_version", LongType(), True),  # gold.features Delta version scored
        StructField("scored_at", TimestampType(), False),
        SCORED_BY,
    ]
)

PREDICTIONS_SPEED_SCHEMA = StructType(
    [
        *_PREDICTION_FIELDS,
        StructField("variant", StringType(), False),  # 'champion' | 'challenger' (canary)
        StructField("event_ts", TimestampType(), True),
        StructField("landed_at", TimestampType(), True),  # landing file's modification time
        StructField("ingested_at", TimestampType(), True),
        StructField("scored_at", TimestampType(), False),
        StructField("batch_id", LongType(), False),
        SCORED_BY,
    ]
)

PREDICTIONS_SHADOW_SCHEMA = PREDICTIONS_SPEED_SCHEMA

SERVING_SCHEMA = StructType(
    [
        StructField("event_id", StringType(), False),
        StructField("event_date", DateType(), False),
        StructField("score", DoubleType(), False),
        StructField("decision", BooleanType(), False),
        StructField("model_version", StringType(), False),
        StructField("source", StringType(), False),  # 'batch' | 'speed'
        StructField("missing_in_speed", BooleanType(), False),
        StructField("scored_at", TimestampType(), False),
        StructField("updated_at", TimestampType(), False),
    ]
)

RECONCILIATION_AUDIT_SCHEMA = StructType(
    [
        StructField("event_date", DateType(), False),
        StructField("batch_version", LongType(), False),
        StructField("speed_version", LongType(), False),
        StructField("batch_rows", LongType(), False),
        StructField("speed_rows", LongType(), False),
        StructField("agreed", LongType(), False),
        StructField("disagreed_same_version", LongType(), False),
        StructField("disagreed_other_version", LongType(), False),
        StructField("speed_only", LongType(), False),
        StructField("batch_only", LongType(), False),
        StructField("late_arrivals", LongType(), False),
        StructField("rejected_speed", LongType(), False),
        StructField("mean_abs_diff", DoubleType(), True),
        StructField("max_abs_diff", DoubleType(), True),
        StructField("decision_flips", LongType(), False),
        StructField("reconciled_at", TimestampType(), False),
    ]
)

STREAM_METRICS_SCHEMA = StructType(
    [
        StructField("query_name", StringType(), False),
        StructField("batch_id", LongType(), False),
        StructField("committed_at", TimestampType(), False),
        StructField("input_rows", LongType(), False),
        StructField("rows_per_second", DoubleType(), True),
        StructField("processing_ms", LongType(), True),
        StructField("latency_p50_ms", DoubleType(), True),
        StructField("latency_p95_ms", DoubleType(), True),
        StructField("quarantined", LongType(), False),
        StructField("model_version", StringType(), True),
    ]
)

# ---- gold.online_requests: every answer of the online service (medallion.serving)
ONLINE_REQUESTS_SCHEMA = StructType(
    [
        StructField("request_date", DateType(), False),
        StructField("requested_at", TimestampType(), False),
        StructField("event_id", StringType(), False),
        StructField("card_id", StringType(), False),
        StructField("event_ts", TimestampType(), False),
        StructField("event_date", DateType(), False),
        StructField("key", StringType(), False),
        StructField("model_version", StringType(), False),
        StructField("precomputed", BooleanType(), False),
        StructField("source", StringType(), False),
        StructField("score", DoubleType(), False),
        StructField("decision", BooleanType(), False),
        StructField("card_known", BooleanType(), False),
        StructField("latency_ms", DoubleType(), True),
        StructField("scored_by", StringType(), True),  # a miss: 'native' | 'pandas_udf'
        *FEATURE_SCHEMA.fields,
    ]
)
