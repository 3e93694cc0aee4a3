"""The whole lambda loop on generated data: what ``make demo`` runs.

Usage::

    from medallion.demo import run_demo

    summary = run_demo(settings, spark, days=14, stream_seconds=60)
    summary.report_path

1. generate ``days`` of history ending yesterday (events, late labels, malformed lines,
   duplicates);
2. bootstrap the model: ingest, features for every day, train, validate, promote;
3. the nightly loop over the history: features, champion checks, score, reconcile;
4. the speed layer on live events dripped by the generator for ``stream_seconds``, then
   (micro-batch triggers) on what landed after its last batch;
5. tonight's batch over today's events, reconcile, summarise and write the HTML report.

Re-running it on the same storage root works: landing files are rewritten with the same
content (ingest skips files it has seen), nights replace their partitions, the stream
resumes from its checkpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from pyspark.sql import functions as F

from medallion.clock import Clock
from medallion.config import Settings
from medallion.tables import Lakehouse


@dataclass
class DemoSummary:
    """What the demo did, as rows of (section, item, value) for one summary table."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)
    report_path: Path | None = None

    def add(self, section: str, item: str, value: object) -> None:
        self.rows.append((section, item, str(value)))


def run_demo(
    settings: Settings,
    spark,
    days: int | None = None,
    stream_seconds: float = 60.0,
    log: Callable[[str], None] = print,
) -> DemoSummary:
    """The whole loop, in five logged steps: history, bootstrap (ingest, features, train,
    validate, promote), a night per day of history, the speed layer on live events, and
    tonight's batch with reconcile, the summary and the run report."""
    from medallion.batch import NightlyBatch
    from medallion.reconcile import Reconciler
    from medallion.report import RunReport

    today = Clock.from_settings(settings).today()
    days = days or settings.datagen.days
    yesterday = today - timedelta(days=1)
    first = yesterday - timedelta(days=days - 1)
    _history(settings, first, yesterday, days, log)
    lake = Lakehouse(settings, spark)  # one lakehouse (one engine) for every step
    _bootstrap(lake, first, yesterday, log)

    log(f"[demo] 3/5 nightly loop over {days} days: score with the champion, reconcile")
    night = NightlyBatch(
        settings,
        spark,
        on_step=lambda s: log(f"    {s.name:<16}{s.rows:>8} rows {s.seconds:6.1f}s {s.detail}"),
        lake=lake,
    )
    for offset in range(days):
        day = first + timedelta(days=offset)
        log(f"  night of {day}")
        night.run(day, ingest=False, build_features=False)

    _live(lake, stream_seconds, log)

    log("[demo] 5/5 tonight's batch over today's live events, reconcile, summary, report")
    Reconciler(settings, spark, lake).run(today)  # what serving holds before the night: speed rows
    night.run(today, ingest=True)  # the batch layer replaces them and audits the agreement
    summary = summarise(settings, spark, today, lake)
    summary.report_path = RunReport(settings, spark, lake=lake).build().write()
    summary.add("report", "written to", summary.report_path)
    return summary


def _history(settings: Settings, first: date, last: date, days: int, log: Callable[[str], None]) -> None:
    from medallion import datagen

    log(f"[demo] 1/5 generating {days} days of history, {first} .. {last}")
    generated = datagen.generate_history(settings, days=days, end_date=last)
    log(
        f"  {generated.events} events, {generated.labels} labels, {sum(generated.malformed.values())} malformed lines"
    )


def _bootstrap(lake: Lakehouse, first: date, last: date, log: Callable[[str], None]) -> None:
    """The first night on an empty registry: ingest, features, train, validate, promote."""
    from medallion.features import FeatureStore
    from medallion.ingest import Ingestor
    from medallion.model.lifecycle import retrain_and_promote

    settings, spark = lake.settings, lake.spark
    log("[demo] 2/5 bootstrap: ingest, features, train, validate, promote")
    for row in Ingestor(settings, spark, lake).run_batch().rows():
        log(
            f"  ingest {row[0]}: {row[1]} files, bronze {row[2]}, silver {row[3]}, quarantined {row[4]}, "
            f"duplicates {row[5]}, dropped {row[6]}"
        )
    store = FeatureStore(settings, spark, lake)
    build = store.build(first, last)
    log(f"  features {build.days}: {build.features} events, {build.profiles} profiles")
    rows, version = store.refresh_training_set()
    log(f"  training set: {rows} labelled rows (v{version})")
    log(f"  model: {retrain_and_promote(spark, settings, store.table('training_set'))}")


def _live(lake: Lakehouse, stream_seconds: float, log: Callable[[str], None]) -> None:
    """The speed layer on events dripped live beside it for ``stream_seconds``."""
    from medallion import datagen
    from medallion.streaming.speed import SpeedLayer

    settings = lake.settings
    log(f"[demo] 4/5 speed layer on live events for {stream_seconds:.0f}s")
    stop = threading.Event()
    dripper = threading.Thread(
        target=datagen.follow,
        kwargs={"settings": settings, "duration_s": stream_seconds, "stop": stop},
        daemon=True,
    )
    dripper.start()
    try:
        speed = SpeedLayer(settings, lake.spark, log=log, lake=lake)
        speed.run(timeout=stream_seconds + 5)
    finally:
        stop.set()
        dripper.join(timeout=30)
    if not speed.plan.continuous:
        # A slow machine may stop the clock before the first micro-batch commits; the same
        # query, from its checkpoint, then scores what landed, so the summary always has the
        # speed layer's rows to set beside the night's.
        log("  the speed layer scores what landed before the clock stopped it (availableNow)")
        trigger = settings.stream.trigger.model_copy(update={"kind": "availableNow"})
        drained = settings.model_copy(
            update={"stream": settings.stream.model_copy(update={"trigger": trigger})}
        )
        SpeedLayer(drained, lake.spark, log=log, lake=lake).run(timeout=300)


def summarise(settings: Settings, spark, today: date, lake: Lakehouse | None = None) -> DemoSummary:
    """Rows per layer, quarantine reasons, the champion, agreement and stream latency."""
    from medallion.reconcile import latest_audits
    from medallion.report.inputs import RunInputs
    from medallion.status import table_status

    summary = DemoSummary()
    lake = lake or Lakehouse(settings, spark)
    for table in table_status(settings, spark):
        summary.add("rows per layer", table.name, f"{table.rows} (v{table.version})")
    if lake.exists("silver", "quarantine"):
        reasons = (
            lake.table("silver", "quarantine")
            .read()
            .select(F.explode("reasons").alias("reason"))
            # "unknown currency: XYZ" and "unknown currency: ABC" are one reason.
            .select(F.split("reason", ":").getItem(0).alias("reason"))
            .groupBy("reason")
            .count()
            .orderBy(F.desc("count"))
            .collect()
        )
        for row in reasons:
            summary.add("quarantine reasons", row.reason, row["count"])
    champion = RunInputs(settings, spark, lake=lake).champion
    if champion is not None:
        summary.add("model", "champion", f"{champion.name} v{champion.version}")
        for name, label in (("roc_auc", "ROC AUC"), ("pr_auc", "PR AUC")):
            if name in champion.metrics:
                summary.add("model", label, f"{champion.metrics[name]:.3f}")
    if lake.exists("gold", "reconciliation_audit"):
        latest = (
            latest_audits(lake.table("gold", "reconciliation_audit").read())
            .agg(
                F.sum("batch_rows").alias("batch"),
                F.sum("agreed").alias("agreed"),
                F.sum(F.col("disagreed_same_version") + F.col("disagreed_other_version")).alias("disagreed"),
                F.sum("speed_only").alias("speed_only"),
                F.sum("batch_only").alias("batch_only"),
                F.sum("rejected_speed").alias("rejected"),
            )
            .first()
        )
        for name in ("batch", "agreed", "disagreed", "speed_only", "batch_only", "rejected"):
            summary.add("batch vs speed", name.replace("_", " "), latest[name] or 0)
    if lake.exists("gold", "stream_metrics"):
        stream = (
            lake.table("gold", "stream_metrics")
            .read()
            .agg(
                F.count("*").alias("batches"),
                F.sum("input_rows").alias("rows"),
                F.percentile_approx("latency_p50_ms", 0.5).alias("p50"),
                F.percentile_approx("latency_p95_ms", 0.95).alias("p95"),
            )
            .first()
        )
        summary.add("stream", "micro-batches", stream.batches)
        summary.add("stream", "landed rows", stream.rows)
        if stream.p50 is not None:
            summary.add("stream", "latency p50 / p95", f"{stream.p50 / 1000:.1f}s / {stream.p95 / 1000:.1f}s")
    return summary
