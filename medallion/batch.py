"""The nightly batch layer: ingest, features, (retrain), champion checks, score a day, reconcile.

Usage::

    from medallion.batch import NightlyBatch

    night = NightlyBatch(settings, spark)
    report = night.run(date(2026, 11, 20))
    report.steps        # [(step, rows, seconds), ...]

The day's partition of gold.predictions_batch is replaced, never appended to, so running a
night twice (or a backfill over it) leaves the same rows and other days untouched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from medallion.catalog import PREDICTIONS_BATCH
from medallion.config import Settings
from medallion.features import DayBuild, FeatureStore
from medallion.ingest import Ingestor
from medallion.predict import with_scores
from medallion.reconcile import Reconciler
from medallion.schemas import PREDICTIONS_BATCH_SCHEMA
from medallion.tables import Lakehouse, Table


@dataclass(frozen=True)
class Step:
    name: str
    rows: int
    seconds: float
    detail: str = ""


@dataclass
class NightReport:
    day: date
    steps: list[Step] = field(default_factory=list)
    scored: int = 0
    model_version: str | None = None
    no_events: bool = False
    # Earlier days whose late events tonight's ingest brought: each scored as a night of its own.
    late: list[NightReport] = field(default_factory=list)


class NightlyBatch:
    """Runs one night; ``on_step`` is called with each finished step (the CLI prints a line)."""

    def __init__(
        self,
        settings: Settings,
        spark: SparkSession,
        on_step: Callable[[Step], None] | None = None,
        lake: Lakehouse | None = None,
    ):
        self.settings = settings
        self.spark = spark
        self.on_step = on_step or (lambda step: None)
        self.lake = lake or Lakehouse(settings, spark)
        self.predictions: Table = self.lake.open(PREDICTIONS_BATCH)

    def _step(self, report: NightReport, name: str, work: Callable[[], tuple[int, str]]) -> None:
        started = time.monotonic()
        rows, detail = work()
        step = Step(name, rows, time.monotonic() - started, detail)
        report.steps.append(step)
        self.on_step(step)

    def run(
        self,
        day: date,
        ingest: bool = True,
        reconcile: bool = True,
        build_features: bool = True,
        late: bool = True,
    ) -> NightReport:
        """One night; ``build_features=False`` scores the features already built for ``day``;
        ``late``: also score the earlier nights that late events reached (:attr:`NightReport.late`)."""
        report = NightReport(day)
        store = FeatureStore(self.settings, self.spark, self.lake)
        if ingest:
            self._step(report, "ingest", lambda: self._ingest())
        build = None

        def features() -> tuple[int, str]:
            nonlocal build
            if build_features:
                build = store.build(day)
                return build.features, f"gold.features v{build.features_version}, {build.profiles} profiles"
            built = store.table("features")
            version = built.version()
            rows = built.read(version=version).where(F.col("event_date") == F.lit(day)).count()
            build = DayBuild(day, rows, 0, rows, version)
            return rows, f"gold.features v{version} (already built)"

        self._step(report, "features", features)
        # Events dated before tonight that arrived since their night get a batch score too:
        # the stream may never have seen them (a file the night alone read), and the batch
        # is the truth. Whoever ingested them (this run, an ingest job, the stream).
        late_days = self._late_days(day) if late else []
        if build.features == 0:
            report.no_events = True
            report.late = [self.run(d, ingest=False, reconcile=reconcile, late=False) for d in late_days]
            return report
        if self.settings.batch.retrain:
            self._step(report, "retrain", lambda: self._retrain(store))

        from medallion.model.scoring import load_champion

        scorer = None

        def champion() -> tuple[int, str]:
            nonlocal scorer
            scorer = load_champion(self.spark, self.settings)
            path = f"scored by {scorer.scored_by}" + (
                f": {scorer.path_note}" if scorer.native is None and scorer.path_note else ""
            )
            return 0, f"{scorer.name} v{scorer.version} (run {scorer.run_id[:8]}), {path}"

        self._step(report, "champion checks", champion)
        report.model_version = str(scorer.version)
        self._step(report, "score", lambda: self._score(day, scorer, build.features_version, store))
        report.scored = report.steps[-1].rows
        if reconcile:
            self._step(report, "reconcile", lambda: self._reconcile(day))
        report.late = [self.run(d, ingest=False, reconcile=reconcile, late=False) for d in late_days]
        return report

    def run_range(
        self, first: date, last: date, ingest: bool = True, reconcile: bool = True
    ) -> list[NightReport]:
        """A backfill: each night in order, ingesting (if asked) once at the start."""
        return [
            self.run(first + timedelta(days=offset), ingest=ingest and offset == 0, reconcile=reconcile)
            for offset in range((last - first).days + 1)
        ]

    def _late_days(self, day: date) -> list[date]:
        """Days of the ``batch.late_days`` before ``day`` the batch scored that hold a silver
        event it has not scored (it arrived after that night)."""
        if not self.lake.exists("silver", "events") or self.settings.batch.late_days == 0:
            return []
        window = (F.col("event_date") >= F.lit(day - timedelta(days=self.settings.batch.late_days))) & (
            F.col("event_date") < F.lit(day)
        )
        events = self.lake.table("silver", "events").read().where(window).select("event_id", "event_date")
        scored = self.predictions.read().where(window).select("event_id", "event_date")
        unscored = (
            events.join(scored, ["event_id", "event_date"], "left_anti").select("event_date").distinct()
        )
        # Only nights that ran: a day the batch never scored is a backfill (--from/--to), not late.
        nights = scored.select("event_date").distinct()
        return sorted(row.event_date for row in unscored.join(nights, "event_date", "left_semi").collect())

    def _ingest(self) -> tuple[int, str]:
        report = Ingestor(self.settings, self.spark, self.lake).run_batch()
        events, labels = report.feeds["events"], report.feeds["labels"]
        detail = (
            f"{events.files + labels.files} files; events: {events.silver} silver, {events.quarantined} quarantined, "
            f"{events.duplicates} duplicates; labels: {labels.silver}"
        )
        return events.bronze + labels.bronze, detail

    def _retrain(self, store: FeatureStore) -> tuple[int, str]:
        from medallion.model.lifecycle import retrain_and_promote

        rows, _version = store.refresh_training_set()
        outcome = retrain_and_promote(self.spark, self.settings, store.table("training_set"))
        return rows, outcome

    def _score(self, day: date, scorer, features_version: int, store: FeatureStore) -> tuple[int, str]:
        features = (
            store.table("features").read(version=features_version).where(F.col("event_date") == F.lit(day))
        )
        scored = (
            with_scores(features, scorer, self.settings.model.decision_threshold)
            .withColumn("feature_version", F.lit(features_version).cast("long"))
            .withColumn("scored_at", F.current_timestamp())
            .select(*PREDICTIONS_BATCH_SCHEMA.fieldNames())
        )
        from medallion.model.guard import ScoreGuard

        # A NaN or out-of-range score fails the write itself: the day is replaced whole or not at all.
        with ScoreGuard.stopping(scored, f"gold.predictions_batch for {day.isoformat()}"):
            self.predictions.overwrite(
                ScoreGuard.refusing(scored), where=f"event_date = DATE'{day.isoformat()}'"
            )
        rows = self.predictions.read().where(F.col("event_date") == F.lit(day)).count()
        return rows, f"gold.predictions_batch v{self.predictions.version()}"

    def _reconcile(self, day: date) -> tuple[int, str]:
        audit = Reconciler(self.settings, self.spark, self.lake).run(day)
        detail = f"agreed {audit.agreed}, batch only {audit.batch_only}, speed only {audit.speed_only}"
        return audit.batch_rows, detail
