"""What a continuous query writes: every record scored or rejected, none dropped.

Continuous mode has no foreachBatch, so nothing reaches silver.quarantine; the map-only plan
cannot split one stream into two either. Each row therefore leaves the query once, judged:

    judged = judge(scored)                       # + reasons: why the row is not a prediction
    kafka_records(judged, "scores", "scores.quarantine")  # -> topic, key, value

The query itself: :func:`start_continuous_query` (the speed layer calls it for a continuous
trigger).

A row is rejected when its record did not parse (silver's reasons) or its score is not a
probability (:func:`medallion.model.guard.score_problem`). A rejected row has no score and
no decision; with the Kafka sink it goes to the quarantine topic as a silver.quarantine
row (feed, reasons, raw, source_file, quarantined_at), a scored one to the scores topic.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from medallion.config import Settings
from medallion.errors import StreamConfigError
from medallion.model.guard import QUARANTINE_FEED, score_problem
from medallion.spark import session_conf, task_slots
from medallion.streaming.landing import landed_stream
from medallion.streaming.plan import StreamPlan, kafka_options
from medallion.tables import Lakehouse

#: What a memory or console sink shows of a judged row.
SHOWN_COLUMNS = (
    "event_id", "card_id", "event_ts", "score", "decision",
    "model_name", "model_version", "scored_by", "reasons",
)  # fmt: skip

#: The scores topic's record (README "Kafka").
SCORE_FIELDS = ("event_id", "score", "decision", "model_name", "model_version", "scored_at")


def judge(scored: DataFrame) -> DataFrame:
    """``scored`` (features, scores and, for parsed records, silver's ``reasons`` and ``raw``)
    with ``reasons`` covering the score too, ``rejected_feed`` naming what failed ('events':
    the record, 'predictions': the score), and score and decision null on a rejected row.
    ``scored_at`` is the :func:`wall_clock` when the row is judged."""
    parsed = F.col("reasons") if "reasons" in scored.columns else F.array().cast("array<string>")
    problem = score_problem()
    unparsed = F.size(parsed) > 0
    raw = F.col("raw") if "raw" in scored.columns else F.lit(None).cast("string")
    scored_row = F.to_json(F.struct(*[F.col(c) for c in scored.columns if c not in ("reasons", "raw")]))
    # All from the input's columns at once. A record that did not parse was scored on nulls:
    # its score problem is no news.
    judged = scored.withColumns(
        {
            "rejected_feed": F.when(unparsed, F.lit("events")).when(
                problem.isNotNull(), F.lit(QUARANTINE_FEED)
            ),
            "reasons": F.when(unparsed | problem.isNull(), parsed).otherwise(F.array(problem)),
            "raw": F.when(unparsed, raw).when(problem.isNotNull(), scored_row),
        }
    )
    kept = ~_rejected()
    return judged.withColumns(
        {
            "score": F.when(kept, F.col("score")),
            "decision": F.when(kept, F.col("decision")),
            "scored_at": wall_clock(),
        }
    )


def wall_clock() -> Column:
    """The time a row is evaluated, read in the JVM for each row. current_timestamp() is fixed
    once per query or batch: continuous mode refuses it (its plan runs for as long as the query
    does), and a real-time batch lasts minutes. A static Java call through ``reflect`` is made
    per row and needs no Python worker."""
    return F.expr("timestamp_millis(CAST(reflect('java.lang.System', 'currentTimeMillis') AS BIGINT))")


def _rejected() -> Column:
    return F.col("rejected_feed").isNotNull()


def shown_rows(judged: DataFrame) -> DataFrame:
    """A judged frame as a memory or console sink shows it: rejected rows carry their reasons."""
    return judged.select(*[c for c in SHOWN_COLUMNS if c in judged.columns])


def kafka_records(judged: DataFrame, scores_topic: str, quarantine_topic: str) -> DataFrame:
    """A judged frame as Kafka sink records: ``topic`` (per row), ``key`` (the event id) and
    ``value`` (the score record, or the silver.quarantine row of a rejected one)."""
    source_file = F.col("source_file") if "source_file" in judged.columns else F.lit(None).cast("string")
    quarantined = F.struct(
        F.col("rejected_feed").alias("feed"),
        "reasons",
        "raw",
        source_file.alias("source_file"),
        F.col("scored_at").alias("quarantined_at"),
    )
    return judged.select(
        F.when(_rejected(), F.lit(quarantine_topic)).otherwise(F.lit(scores_topic)).alias("topic"),
        F.col("event_id").alias("key"),
        F.when(_rejected(), F.to_json(quarantined))
        .otherwise(F.to_json(F.struct(*SCORE_FIELDS)))
        .alias("value"),
    )


def start_continuous_query(
    lake: Lakehouse, plan: StreamPlan, champion, checkpoint: str, log=print
) -> StreamingQuery:
    """Start the continuous-trigger query on ``lake``: map-only features (a broadcast profile
    lookup) and ``champion``'s scoring, every row judged; Kafka or rate events in, Kafka,
    memory or console out (``settings.stream``). The caller has refused a rate source that
    would hold every core (:func:`check_cores`; the speed layer does at construction)."""
    from medallion.features import profile_lookup_features
    from medallion.predict import with_scores

    settings, spark = lake.settings, lake.spark
    stream = settings.stream
    events = (
        rate_events(spark, settings) if stream.source == "rate" else parsed_kafka_records(spark, settings)
    )
    profiles = (
        lake.table("gold", "card_profiles").read().toPandas()
        if lake.exists("gold", "card_profiles")
        else None
    )
    features = profile_lookup_features(events, profiles)
    judged = judge(with_scores(features, champion, settings.model.decision_threshold))
    if stream.sink == "kafka":
        out = kafka_records(judged, stream.kafka.scores_topic, stream.kafka.quarantine_topic)
    else:
        out = shown_rows(judged)
    writer = out.writeStream.queryName(stream.query_name).trigger(**plan.trigger_kwargs)
    if stream.sink == "memory":
        writer = writer.format("memory")
    elif stream.sink == "console":
        writer = writer.format("console").option("checkpointLocation", checkpoint)
    else:
        # Each record names its topic: scores, or the quarantine topic for rejected ones.
        writer = (
            writer.format("kafka").options(**kafka_options(settings)).option("checkpointLocation", checkpoint)
        )
    # A pandas UDF fills an Arrow batch before it runs; in continuous mode rows trickle
    # in, so a full-size batch would hold them back. The query clones the session's
    # conf at start, so the smaller batch applies to this query only.
    rows_per_batch = {"spark.sql.execution.arrow.maxRecordsPerBatch": str(stream.continuous_arrow_batch_rows)}
    with session_conf(spark, rows_per_batch):
        query = writer.start()
    log(f"[stream] started {stream.query_name} (continuous): {plan.describe()}")
    return query


def start_real_time_query(
    lake: Lakehouse, plan: StreamPlan, champion, checkpoint: str, log=print
) -> StreamingQuery:
    """Start a real-time-mode query (Spark's ``realTime`` trigger): Kafka in, Kafka out, all in
    the JVM, as real-time mode runs no Python. Features join a snapshot of gold.card_profiles
    taken at start (:meth:`SpeedLayer.refreshed` restarts the query on a new one; a broadcast
    stream-static join: the same :func:`build_features` as the
    night and the micro-batches), the champion is scored by its compiled expressions, and
    every row leaves judged, as in continuous mode."""
    from medallion.features import build_features
    from medallion.predict import with_scores

    settings, spark = lake.settings, lake.spark
    if getattr(champion, "native", None) is None:
        raise StreamConfigError(
            f"stream.trigger.kind=realTime needs the champion scored natively, and v{champion.version} is not: "
            f"{champion.path_note or 'model.scoring is not native'}"
        )
    stream = settings.stream
    events = parsed_kafka_records(spark, settings)
    profiles = lake.table("gold", "card_profiles").read() if lake.exists("gold", "card_profiles") else None
    features = build_features(events, None if profiles is None else F.broadcast(profiles))
    scored = with_scores(features, champion, settings.model.decision_threshold)
    out = kafka_records(judge(scored), stream.kafka.scores_topic, stream.kafka.quarantine_topic)
    query = (
        # Real-time mode takes only the update output mode; a stateless query emits each row once either way.
        out.writeStream.queryName(stream.query_name)
        .outputMode("update")
        .trigger(**plan.trigger_kwargs)
        .format("kafka")
        .options(**kafka_options(settings))
        .option("checkpointLocation", checkpoint)
        .start()
    )
    log(f"[stream] started {stream.query_name} (real-time): {plan.describe()}")
    return query


def check_cores(spark: SparkSession, settings: Settings) -> None:
    """Refuse a rate source that would hold every core: continuous tasks never finish, so with
    every core held no other job (the profile lookup's, a night's) ever runs."""
    stream = settings.stream
    cores = task_slots(spark.sparkContext)
    if stream.source == "rate" and stream.rate.partitions >= cores:
        raise StreamConfigError(
            f"stream.rate.partitions={stream.rate.partitions} would hold all {cores} cores in continuous "
            f"mode; set it below {cores} (or give Spark more cores)"
        )


def rate_events(spark: SparkSession, settings: Settings) -> DataFrame:
    """Synthetic events from the rate source (continuous-mode demos and tests)."""
    from medallion.schemas import CHANNELS, MERCHANT_CATEGORIES

    rate = (
        spark.readStream.format("rate")
        .option("rowsPerSecond", settings.stream.rate.rows_per_second)
        .option("numPartitions", settings.stream.rate.partitions)
        .load()
    )
    channels = F.array(*[F.lit(c) for c in CHANNELS])
    categories = F.array(*[F.lit(c) for c in MERCHANT_CATEGORIES])
    return rate.select(
        F.concat(F.lit("rate-"), F.col("value").cast("string")).alias("event_id"),
        F.concat(F.lit("card-"), (F.col("value") % 50).cast("string")).alias("card_id"),
        F.concat(F.lit("m-"), (F.col("value") % 17).cast("string")).alias("merchant_id"),
        F.element_at(categories, (F.col("value") % len(MERCHANT_CATEGORIES) + 1).cast("int")).alias(
            "merchant_category"
        ),
        ((F.col("value") % 200) + F.lit(1.25)).cast("decimal(18,2)").alias("amount"),
        F.lit("EUR").alias("currency"),
        F.lit("DE").alias("country"),
        F.element_at(channels, (F.col("value") % len(CHANNELS) + 1).cast("int")).alias("channel"),
        F.col("timestamp").alias("event_ts"),
        F.to_date("timestamp").alias("event_date"),
    )


def parsed_kafka_records(spark: SparkSession, settings: Settings) -> DataFrame:
    """Kafka records through the same silver parsing as files (map-only, so continuous-safe):
    every record but blank ones, with its ``reasons`` (empty when it parsed) and ``raw`` line."""
    from medallion.silver import parse_events

    landed = landed_stream(spark, settings, continuous=True)
    return parse_events(landed.select("raw", "source_file", "ingested_at")).records
