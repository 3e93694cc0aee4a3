"""The speed layer's query: landed events -> bronze -> silver -> features -> champion -> predictions.

Usage::

    from medallion.streaming.speed import SpeedLayer

    speed = SpeedLayer(settings, spark)
    speed.run(timeout=60)          # trigger, source and sink from settings.stream
    query = speed.start()          # or drive the StreamingQuery yourself, then speed.stopped()

Micro-batch triggers write everything from foreachBatch through the Delta layer keyed by
``(query id, batch id)``: a batch replayed after a crash writes nothing twice. The champion
is re-resolved at every batch boundary, so a promotion takes effect without a restart and
every row records the version that scored it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from medallion.catalog import PREDICTIONS_SHADOW, PREDICTIONS_SPEED, SERVING, STREAM_METRICS
from medallion.config import Settings
from medallion.errors import StreamConfigError
from medallion.features import build_features
from medallion.ingest import Ingestor
from medallion.model.guard import ScoreGuard, score_problem
from medallion.predict import with_scores
from medallion.schemas import (
    PREDICTIONS_SHADOW_SCHEMA,
    PREDICTIONS_SPEED_SCHEMA,
)
from medallion.spark import session_conf, task_slots
from medallion.streaming.checkpoint import query_id
from medallion.streaming.compaction import Compaction
from medallion.streaming.continuous import judge, kafka_records, shown_rows
from medallion.streaming.landing import landed_stream, record_lineless
from medallion.streaming.plan import StreamPlan, check_connectors, kafka_options, plan_stream
from medallion.streaming.progress import BatchFigures, StreamProgress
from medallion.streaming.run import BatchGate, run_until_stopped
from medallion.tables import Lakehouse, Table

ROWS_PER_SCORING_TASK = 50_000


def upsert_serving(serving: Table, predictions: pa.Table) -> None:
    """Speed predictions (gold.predictions_speed rows, on the driver) into serving.

    The batch layer is the truth: a speed row never replaces a batch row.
    """
    n = predictions.num_rows
    rows = predictions.select(["event_id", "event_date", "score", "decision", "model_version", "scored_at"])
    rows = (
        rows.append_column("source", pa.array(["speed"] * n, pa.string()))
        .append_column("missing_in_speed", pa.array([False] * n, pa.bool_()))
        .append_column("updated_at", pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC")))
    )
    serving.merge(rows, on=["event_date", "event_id"], update_condition="target.source = 'speed'")


# Stamped on the driver once scored. A value in a Spark plan is compiled into its generated
# code: the scoring stage, with the batch id and a timestamp in it, was compiled anew (and run
# before the JIT had optimised it) every micro-batch.
STAMPS = ("scored_at", "batch_id")
UNSTAMPED_COLUMNS = [name for name in PREDICTIONS_SPEED_SCHEMA.fieldNames() if name not in STAMPS]


def stamped(rows: pa.Table, batch_id: int) -> pa.Table:
    """Scored rows (:data:`UNSTAMPED_COLUMNS`) as gold.predictions_speed rows: ``scored_at``
    (now) and ``batch_id`` added."""
    n = rows.num_rows
    rows = rows.append_column(
        "scored_at", pa.array([datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC"))
    ).append_column("batch_id", pa.array([batch_id] * n, pa.int64()))
    return rows.select(PREDICTIONS_SPEED_SCHEMA.fieldNames())


def landed_seconds(predictions: pa.Table) -> np.ndarray:
    """Epoch seconds at which each prediction's event landed (rows without a landing time left out)."""
    landed = predictions.column("landed_at").drop_null()
    return landed.cast(pa.int64()).to_numpy() / 1e6


def canary_cards(card_id, fraction: float):
    """True for a stable ``fraction`` of cards: the same card always lands on the same side."""
    return (F.abs(F.xxhash64(card_id)) % 10_000) < F.lit(round(fraction * 10_000))


class SpeedLayer:
    """Builds and starts the streaming scoring query described by ``settings.stream``."""

    def __init__(self, settings: Settings, spark: SparkSession, log=print):
        self.settings = settings
        self.spark = spark
        self.log = log
        self.plan: StreamPlan = plan_stream(settings)
        check_connectors(spark, settings, self.plan)
        self.lake = Lakehouse(settings, spark)
        self._scorers: dict[str, object] = {}
        self.gate = BatchGate()

    @property
    def checkpoint(self) -> str:
        return self.settings.storage.checkpoint_path(self.settings.stream.query_name)

    def tables(self) -> dict[str, Table]:
        lake = self.lake
        tables = {
            "speed": lake.open(PREDICTIONS_SPEED),
            "serving": lake.open(SERVING),
            "metrics": lake.open(STREAM_METRICS),
        }
        if self.settings.stream.challenger == "shadow":
            tables["shadow"] = lake.open(PREDICTIONS_SHADOW)
        return tables

    # ------------------------------------------------------------------ models

    def scorer(self, alias: str):
        """The model behind ``alias`` now; reloaded only when the alias moved."""
        from medallion.model.scoring import load_alias, resolve_alias

        version = resolve_alias(self.settings, alias)
        cached = self._scorers.get(alias)
        if cached is None or str(cached.version) != str(version):
            cached = self._scorers[alias] = load_alias(self.spark, self.settings, alias)
            self.log(f"[stream] {alias} is {cached.name} v{cached.version}, scored by {cached.scored_by}")
            if cached.path_note and cached.native is None:
                self.log(f"[stream] note: {cached.path_note}")
        return cached

    def challenger(self):
        """The challenger, or None while it may not serve (no alias yet, not validated, failed
        the gate): the nightly train registers it before validate gates it, and meanwhile the
        champion scores every card instead of the stream stopping."""
        from medallion.errors import ModelNotReadyError

        try:
            return self.scorer(self.settings.model.aliases.challenger)
        except ModelNotReadyError as refused:
            if str(refused) != getattr(self, "_refused", None):
                self._refused = str(refused)
                self.log(f"[stream] challenger not used: {refused}")
            return None

    # ------------------------------------------------------------------ start

    def start(self):
        for note in self.plan.notes:
            self.log(f"[stream] note: {note}")
        if self.plan.continuous:
            return self._start_continuous()
        self.scorer(self.settings.model.aliases.champion)  # fail before start if there is no champion
        self._tables = self.tables()
        self._ingestor = Ingestor(self.settings, self.spark)
        written = [
            self._ingestor.bronze["events"],
            self._ingestor.silver["events"],
            self._ingestor.quarantine,
        ]
        written += [table for name, table in self._tables.items() if name != "metrics"]
        self._compaction = Compaction(written, self.settings.stream.compact_every)
        self.progress = StreamProgress(
            self.spark, self._tables["metrics"], self.settings.stream.query_name, self.log
        ).attach()
        landed = landed_stream(self.spark, self.settings)
        query = (
            landed.writeStream.queryName(self.settings.stream.query_name)
            .option("checkpointLocation", self.checkpoint)
            .foreachBatch(self.gate.wrap(self.score_batch))
            .trigger(**self.plan.trigger_kwargs)
            .start()
        )
        self.log(f"[stream] started {self.settings.stream.query_name}: {self.plan.describe()}")
        return query

    def run(self, timeout: float | None = None) -> None:
        """Start the query and block until it ends, ``timeout`` passes, or SIGTERM / Ctrl-C."""
        query = self.start()
        try:
            run_until_stopped(
                query, timeout=timeout, log=self.log, gate=None if self.plan.continuous else self.gate
            )
        finally:
            self.stopped()

    def stopped(self) -> None:
        """After the query stopped: let the listener write the last batches' metrics, then detach."""
        progress = getattr(self, "progress", None)
        if progress is not None:
            progress.flush()
            progress.detach()

    # ------------------------------------------------------------------ one micro-batch

    def score_batch(self, landed: DataFrame, batch_id: int) -> None:
        """foreachBatch body: ingest, score with the champion, commit, record the batch's figures."""
        tables = self._tables
        app_id = f"{self.settings.stream.query_name}:{query_id(self.checkpoint)}"
        txn = (app_id, batch_id)
        # Silver is counted by the scoring job below (every silver row is scored): one job fewer.
        # Ingest's own summary job names the batch's files and when each landed, so the
        # predictions carry their landing time without reading the files again.
        # Kafka records carry their own timestamps (bronze keeps them); the landing time per
        # file, for the latency figures, applies to files only.
        kafka = self.settings.stream.source == "kafka"
        ingested = self._ingestor.process("events", landed, app_id, batch_id, keep_silver=True)
        file_times = ingested.landed_us
        try:
            lineless = (
                (0, 0)
                if kafka
                else record_lineless(self._ingestor, "events", self.checkpoint, batch_id, ingested, app_id)
            )
            champion = self.scorer(self.settings.model.aliases.champion)
            rows, counts = ingested.silver_rows, ingested.counts
            scored_rows, unscorable, latencies = 0, 0, (None, None)
            if rows is not None and ingested.valid > 0:
                # Only the profiles of the batch's event dates: a partition filter, not a scan
                # of every day's profiles per batch.
                profiles = (
                    self.lake.table("gold", "card_profiles")
                    .read()
                    .where(F.col("profile_date").isin(ingested.event_dates))
                    if self.lake.exists("gold", "card_profiles")
                    else None
                )
                scored = self._score(rows, profiles, champion, file_times, ingested.valid)
                # One job scores the batch and brings it to the driver, for the counts and all commits.
                checked = ScoreGuard.checked(scored).select(*UNSTAMPED_COLUMNS, *ScoreGuard.COLUMNS)
                valid, invalid = ScoreGuard.split(checked.toArrow())
                predictions = stamped(valid, batch_id)
                scored_rows, unscorable = predictions.num_rows, invalid.num_rows
                ingested.counted(scored_rows + unscorable)
                if unscorable:
                    # A NaN would read as fraud: the row waits in quarantine with its reason instead.
                    quarantine = ScoreGuard.quarantine_rows(invalid)
                    self._ingestor.quarantine.append(quarantine, txn=(f"{app_id}:scores", batch_id))
                tables["speed"].append(predictions, txn=txn)
                # Canary rows are served too: that is what a canary is for.
                upsert_serving(tables["serving"], predictions)
                committed = time.time()
                landed = landed_seconds(predictions)
                if len(landed):
                    # now - quantile_p(landed) is the (1 - p) quantile of landed -> committed.
                    latencies = tuple(
                        max(0.0, committed - float(q)) * 1000 for q in np.quantile(landed, [0.5, 0.05])
                    )
                if self.settings.stream.challenger == "shadow":
                    self._shadow(tables["shadow"], rows, profiles, batch_id, file_times, ingested.valid, txn)
            else:
                ingested.counted(0)
            figures = BatchFigures(
                counts.bronze,
                scored_rows,
                counts.quarantined + unscorable + sum(lineless) + counts.unread,
                counts.duplicates,
                latencies[0],
                latencies[1],
                str(champion.version),
            )
            if getattr(self, "progress", None) is not None:
                self.progress.record(batch_id, figures, app_id)
        finally:
            ingested.release()
        compacted = self._compaction.after(batch_id)
        if compacted:
            self.log(f"[stream] {compacted}")

    def _shadow(
        self, table: Table, rows, profiles, batch_id, file_times: dict[str, int], silver: int, txn
    ) -> None:
        """The challenger scores the same rows beside the champion; never served."""
        challenger = self.challenger()
        if challenger is None:
            return
        shadow = self._score(rows, profiles, challenger, file_times, silver, variant="challenger")
        shadow = shadow.withColumns(
            {"scored_at": F.current_timestamp(), "batch_id": F.lit(batch_id).cast("long")}
        ).where(score_problem().isNull())  # a challenger's NaN is no prediction either (it serves nobody)
        table.append(shadow.select(*PREDICTIONS_SHADOW_SCHEMA.fieldNames()), txn=txn, expected_rows=silver)

    def _score(
        self,
        rows,
        profiles,
        scorer,
        file_times: dict[str, int],
        silver: int,
        variant: str = "champion",
    ) -> DataFrame:
        # Each scoring task loads the model once: a small batch scores in few tasks.
        tasks = max(1, min(task_slots(self.spark.sparkContext), -(-silver // ROWS_PER_SCORING_TASK)))
        features = build_features(rows, profiles).coalesce(tasks)
        threshold = self.settings.model.decision_threshold
        challenger = (
            self.challenger()
            if variant == "champion" and self.settings.stream.challenger == "canary"
            else None
        )
        if challenger is not None:
            on_canary = canary_cards(F.col("card_id"), self.settings.stream.canary_fraction)
            scored = with_scores(features.where(~on_canary), scorer, threshold).withColumn(
                "variant", F.lit("champion")
            )
            canary = with_scores(features.where(on_canary), challenger, threshold).withColumn(
                "variant", F.lit("challenger")
            )
            scored = scored.unionByName(canary)
        else:
            scored = with_scores(features, scorer, threshold).withColumn("variant", F.lit(variant))
        if not file_times:  # Kafka records: no landing file, no landing time
            return scored.withColumn("landed_at", F.lit(None).cast("timestamp"))
        landed_at = F.create_map(*[F.lit(value) for pair in file_times.items() for value in pair])
        # A map literal is a reference in Spark's generated code, so it does not change the code.
        return scored.withColumn("landed_at", F.timestamp_micros(landed_at[F.col("source_file")]))

    # ------------------------------------------------------------------ continuous

    def _start_continuous(self):
        """Continuous mode: map-only features (broadcast profile lookup) and the same scoring UDF."""
        from medallion.features import profile_lookup_features

        stream = self.settings.stream
        cores = task_slots(self.spark.sparkContext)
        if stream.source == "rate" and stream.rate.partitions >= cores:
            # Continuous tasks never finish: with every core held, no other job ever runs.
            raise StreamConfigError(
                f"stream.rate.partitions={stream.rate.partitions} would hold all {cores} cores in continuous "
                f"mode; set it below {cores} (or give Spark more cores)"
            )
        champion = self.scorer(self.settings.model.aliases.champion)
        events = self._rate_events() if stream.source == "rate" else self._kafka_records()
        profiles = (
            self.lake.table("gold", "card_profiles").read().toPandas()
            if self.lake.exists("gold", "card_profiles")
            else None
        )
        features = profile_lookup_features(events, profiles)
        judged = judge(with_scores(features, champion, self.settings.model.decision_threshold))
        if stream.sink == "kafka":
            kafka = stream.kafka
            out = kafka_records(judged, kafka.scores_topic, kafka.quarantine_topic)
        else:
            out = shown_rows(judged)
        writer = out.writeStream.queryName(stream.query_name).trigger(**self.plan.trigger_kwargs)
        if stream.sink == "memory":
            writer = writer.format("memory")
        elif stream.sink == "console":
            writer = writer.format("console").option("checkpointLocation", self.checkpoint)
        else:
            # Each record names its topic: scores, or the quarantine topic for rejected ones.
            writer = (
                writer.format("kafka")
                .options(**kafka_options(self.settings))
                .option("checkpointLocation", self.checkpoint)
            )
        # A pandas UDF fills an Arrow batch before it runs; in continuous mode rows trickle
        # in, so a full-size batch would hold them back. The query clones the session's
        # conf at start, so the smaller batch applies to this query only.
        rows_per_batch = {
            "spark.sql.execution.arrow.maxRecordsPerBatch": str(stream.continuous_arrow_batch_rows)
        }
        with session_conf(self.spark, rows_per_batch):
            query = writer.start()
        self.log(f"[stream] started {stream.query_name} (continuous): {self.plan.describe()}")
        return query

    def _rate_events(self) -> DataFrame:
        """Synthetic events from the rate source (continuous-mode demos and tests)."""
        from medallion.schemas import CHANNELS, MERCHANT_CATEGORIES

        rate = (
            self.spark.readStream.format("rate")
            .option("rowsPerSecond", self.settings.stream.rate.rows_per_second)
            .option("numPartitions", self.settings.stream.rate.partitions)
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

    def _kafka_records(self) -> DataFrame:
        """Kafka records through the same silver parsing as files (map-only, so continuous-safe):
        every record but blank ones, with its ``reasons`` (empty when it parsed) and ``raw`` line."""
        from medallion.silver import parse_events

        landed = landed_stream(self.spark, self.settings, continuous=True)
        landed = landed.select("raw", "source_file", "ingested_at")
        return parse_events(landed).records
