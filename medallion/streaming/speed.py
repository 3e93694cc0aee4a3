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
from concurrent.futures import ThreadPoolExecutor

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.util import inheritable_thread_target

from medallion.catalog import PREDICTIONS_SHADOW, PREDICTIONS_SPEED, SERVING, STREAM_METRICS
from medallion.config import Settings
from medallion.features import build_features
from medallion.ingest import IngestedBatch, Ingestor
from medallion.model.guard import ScoreGuard, score_problem
from medallion.predict import with_scores
from medallion.schemas import PREDICTIONS_SHADOW_SCHEMA
from medallion.spark import task_slots
from medallion.streaming.checkpoint import query_id
from medallion.streaming.compaction import Compaction
from medallion.streaming.continuous import check_cores, start_continuous_query, start_real_time_query
from medallion.streaming.landing import landed_stream, record_lineless
from medallion.streaming.online_copy import OnlineStoreCopy
from medallion.streaming.plan import StreamPlan, check_connectors, plan_stream
from medallion.streaming.predictions import (
    UNSTAMPED_COLUMNS,
    canary_cards,
    landing_latencies_ms,
    serving_rows,
    stamped,
    upsert_serving,
)
from medallion.streaming.progress import BatchFigures, StreamProgress
from medallion.streaming.run import BatchGate, run_until_stopped, stop_interrupting
from medallion.tables import Lakehouse, Table

ROWS_PER_SCORING_TASK = 50_000


class SpeedLayer:
    """Builds and starts the streaming scoring query described by ``settings.stream``.

    Everything a micro-batch writes is opened here, once: the ingest tables, the prediction,
    serving and metrics tables, and their compaction. A continuous query writes none of them.
    """

    def __init__(self, settings: Settings, spark: SparkSession, log=print, lake: Lakehouse | None = None):
        self.plan: StreamPlan = plan_stream(settings)
        self.settings = settings
        self.spark = spark
        self.log = log
        check_connectors(spark, settings, self.plan)
        self.lake = lake or Lakehouse(settings, spark)
        self.gate = BatchGate()
        self.progress: StreamProgress | None = None
        self._scorers: dict[str, object] = {}
        self._refused: str | None = None  # why the challenger was last refused, said once
        # The card-profile version and champion a continuous query started on (see refreshed).
        self._started_on: tuple[int | None, str] | None = None
        self._online = self._online_store()
        self._online_copy: OnlineStoreCopy | None = None
        self._ingestor: Ingestor | None = None
        self._tables: dict[str, Table] = {}
        self._compaction: Compaction | None = None
        if self.plan.continuous:
            check_cores(spark, settings)
        else:
            self._ingestor = Ingestor(settings, spark, self.lake)
            self._tables = self.tables()
            written = [
                self._ingestor.bronze["events"],
                self._ingestor.silver["events"],
                self._ingestor.quarantine,
            ]
            written += [table for name, table in self._tables.items() if name != "metrics"]
            self._compaction = Compaction(written, settings.stream.compact_every)

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

    # ------------------------------------------------------------------ online store

    def _online_store(self):
        """The online store the stream's serving rows also go to (``serving.stream_writes``),
        or None: a store that cannot be opened leaves the stream scoring, and says so."""
        from medallion.errors import MedallionError
        from medallion.serving.stores import open_store

        if not self.settings.serving.stream_writes or self.plan.continuous:
            return None
        try:
            return open_store(self.settings)
        except MedallionError as why:
            self.log(f"[stream] note: serving rows go to gold.predictions only: {why}")
            return None

    def _to_online_store(self, served) -> None:
        """Queue rows gold.predictions committed for the online store: the store is a copy, so
        the batch does not wait for it, and a failure there loses nothing (the next
        ``serve materialize`` publishes the rows) and stops no batch."""
        if self._online is None:
            return
        if self._online_copy is None:
            self._online_copy = OnlineStoreCopy(self._online, self.log)
        self._online_copy.put(served)

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
            if str(refused) != self._refused:
                self._refused = str(refused)
                self.log(f"[stream] challenger not used: {refused}")
            return None

    # ------------------------------------------------------------------ start

    def start(self):
        for note in self.plan.notes:
            self.log(f"[stream] note: {note}")
        champion = self.scorer(self.settings.model.aliases.champion)  # no champion: fail before start
        if self.plan.continuous:
            # Read before the query takes its snapshot: a change in between shows at the next check.
            self._started_on = self._profiles_and_champion()
            start_query = start_real_time_query if self.plan.real_time else start_continuous_query
            return start_query(self.lake, self.plan, champion, self.checkpoint, self.log)
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
        """Start the query and block until it ends, ``timeout`` passes, or SIGTERM / Ctrl-C.

        A continuous or real-time query holds a snapshot of the card profiles and the champion
        it started with; every ``stream.refresh_seconds`` it is restarted from its checkpoint
        if either moved (a memory sink has no checkpoint to restart from, so it keeps them).
        """
        query = self.start()
        every = self.settings.stream.refresh_seconds
        refreshing = self.plan.continuous and every is not None and self.settings.stream.sink != "memory"
        try:
            run_until_stopped(
                query,
                timeout=timeout,
                log=self.log,
                gate=None if self.plan.continuous else self.gate,
                refresh=self.refreshed if refreshing else None,
                refresh_every=every or 0.0,
                interrupt=self.plan.continuous,
            )
        finally:
            self.stopped()

    def refreshed(self, query):
        """A continuous or real-time ``query`` restarted from its checkpoint on today's card
        profiles and champion, if either moved since it started; else None (it runs on).
        Sinks are at-least-once across the restart: records after the last committed epoch
        are scored again (Kafka consumers key on event_id)."""
        from medallion.errors import MedallionError

        try:
            now = self._profiles_and_champion()
        except MedallionError as unreadable:  # the registry or the table is away: keep scoring
            self.log(f"[stream] refresh skipped: {unreadable}")
            return None
        if now == self._started_on:
            return None
        (profiles_then, champion_then), (profiles_now, champion_now) = self._started_on, now
        moved = [
            f"{what} {then} -> {now}"
            for what, then, now in (
                ("gold.card_profiles version", profiles_then, profiles_now),
                ("champion version", champion_then, champion_now),
            )
            if then != now
        ]
        self.log(
            f"[stream] {', '.join(moved)}: restarting {self.settings.stream.query_name} from its checkpoint"
        )
        stop_interrupting(query)
        return self.start()

    def _profiles_and_champion(self) -> tuple[int | None, str]:
        from medallion.model.scoring import resolve_alias

        profiles = (
            self.lake.table("gold", "card_profiles").version()
            if self.lake.exists("gold", "card_profiles")
            else None
        )
        return profiles, str(resolve_alias(self.settings, self.settings.model.aliases.champion))

    def stopped(self) -> None:
        """After the query stopped: the online store gets the rows queued for it, and the
        listener writes the last batches' metrics, then detaches."""
        if self._online_copy is not None:
            self._online_copy.close()
            self._online_copy = None
        progress = self.progress
        if progress is not None:
            progress.flush()
            progress.detach()

    # ------------------------------------------------------------------ one micro-batch

    def score_batch(self, landed: DataFrame, batch_id: int) -> None:
        """foreachBatch body: ingest, score with the champion, commit, record the batch's figures."""
        app_id = f"{self.settings.stream.query_name}:{query_id(self.checkpoint)}"
        # Silver is counted by the scoring job (every silver row is scored): one job fewer.
        # Ingest's own summary job names the batch's files and when each landed, so the
        # predictions carry their landing time without reading the files again.
        ingested = self._ingestor.process("events", landed, app_id, batch_id, keep_silver=True)
        try:
            # Kafka records are not files: none can vanish or be unreadable between list and read.
            lineless = (
                (0, 0)
                if self.settings.stream.source == "kafka"
                else record_lineless(self._ingestor, "events", self.checkpoint, batch_id, ingested, app_id)
            )
            champion = self.scorer(self.settings.model.aliases.champion)
            scored_rows, unscorable, latencies = 0, 0, (None, None)
            if ingested.silver_rows is not None and ingested.valid > 0:
                scored_rows, unscorable, latencies = self._score_and_commit(
                    ingested, champion, app_id, batch_id
                )
            else:
                ingested.counted(0)
            counts = ingested.counts
            figures = BatchFigures(
                counts.bronze,
                scored_rows,
                counts.quarantined + unscorable + sum(lineless) + counts.unread,
                counts.duplicates,
                *latencies,
                str(champion.version),
            )
            if self.progress is not None:
                self.progress.record(batch_id, figures, app_id)
        finally:
            ingested.release()
        compacted = self._compaction.after(batch_id)
        if compacted:
            self.log(f"[stream] {compacted}")

    def _score_and_commit(
        self, ingested: IngestedBatch, champion, app_id: str, batch_id: int
    ) -> tuple[int, int, tuple[float | None, float | None]]:
        """Score the batch's silver rows, commit predictions, serving, quarantined scores and
        the shadow; returns (scored, unscorable, (p50, p95) landing latency in ms)."""
        tables, txn = self._tables, (app_id, batch_id)
        rows = ingested.silver_rows
        # Only the profiles of the batch's event dates: a partition filter, not a scan of
        # every day's profiles per batch.
        profiles = (
            self.lake.table("gold", "card_profiles")
            .read()
            .where(F.col("profile_date").isin(ingested.event_dates))
            if self.lake.exists("gold", "card_profiles")
            else None
        )
        scored = self._score(rows, profiles, champion, ingested.landed_us, ingested.valid)
        # One job scores the batch and brings it to the driver, for the counts and all commits.
        checked = ScoreGuard.checked(scored).select(*UNSTAMPED_COLUMNS, *ScoreGuard.COLUMNS)
        valid, invalid = ScoreGuard.split(checked.toArrow())
        predictions = stamped(valid, batch_id)
        ingested.counted(predictions.num_rows + invalid.num_rows)
        if invalid.num_rows:
            # A NaN would read as fraud: the row waits in quarantine with its reason instead.
            quarantine = ScoreGuard.quarantine_rows(invalid)
            self._ingestor.quarantine.append(quarantine, txn=(f"{app_id}:scores", batch_id))
        # Canary rows are served too: that is what a canary is for.
        served = serving_rows(predictions)
        # Two tables, two commits that do not depend on each other: the serving upsert goes
        # on beside the speed append. A replay skips the append (its txn) and upserts the
        # same rows again, which changes nothing.
        inherited = inheritable_thread_target(rows.sparkSession)  # the micro-batch's job properties
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="serving-upsert") as upserting:
            upserted = upserting.submit(inherited(upsert_serving), tables["serving"], served)
            tables["speed"].append(predictions, txn=txn)
            upserted.result()
        self._to_online_store(served)
        latencies = landing_latencies_ms(predictions, time.time())
        if self.settings.stream.challenger == "shadow":
            self._shadow(tables["shadow"], rows, profiles, batch_id, ingested.landed_us, ingested.valid, txn)
        return predictions.num_rows, invalid.num_rows, latencies

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
        if "kafka_timestamp" in scored.columns:  # a Kafka record "lands" when it is produced
            return scored.withColumn("landed_at", F.col("kafka_timestamp"))
        if not file_times:
            return scored.withColumn("landed_at", F.lit(None).cast("timestamp"))
        landed_at = F.create_map(*[F.lit(value) for pair in file_times.items() for value in pair])
        # A map literal is a reference in Spark's generated code, so it does not change the code.
        return scored.withColumn("landed_at", F.timestamp_micros(landed_at[F.col("source_file")]))
