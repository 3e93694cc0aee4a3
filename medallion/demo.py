"""The whole lambda loop on generated data: what ``make demo`` runs.

Usage::

    from medallion.demo import run_demo

    summary = run_demo(settings, spark, days=14, stream_seconds=60)

1. generate ``days`` of history (events, late labels, malformed lines, duplicates);
2. the nightly loop over the history: ingest, features, train, validate, promote, score,
   reconcile;
3. the speed layer on live events dripped by the generator for ``stream_seconds``;
4. reconcile today, print a summary and write the HTML report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from medallion.config import Settings


@dataclass
class DemoSummary:
    lines: list[str] = field(default_factory=list)
    report_path: str | None = None


def run_demo(
    settings: Settings,
    spark,
    days: int | None = None,
    stream_seconds: float = 60.0,
    log: Callable[[str], None] = print,
) -> DemoSummary:
    from medallion import datagen
    from medallion.batch import NightlyBatch
    from medallion.featurestore import FeatureStore
    from medallion.ingest import Ingestor
    from medallion.model.lifecycle import retrain_and_promote
    from medallion.reconcile import Reconciler
    from medallion.streaming.speed import SpeedLayer

    summary = DemoSummary()
    today = datetime.now(UTC).date()
    days = days or settings.datagen.days
    first = today - timedelta(days=days)
    yesterday = today - timedelta(days=1)

    log(f"[demo] 1/4 generating {days} days of history ending {yesterday}")
    generated = datagen.generate_history(settings, days=days, end_date=yesterday)
    summary.lines.append(f"generated: {generated}")

    log("[demo] 2/4 nightly loop over the history")
    report = Ingestor(settings, spark).run_batch()
    for row in report.rows():
        log(
            f"  ingest {row[0]}: files {row[1]}, bronze {row[2]}, silver {row[3]}, quarantined {row[4]}, duplicates {row[5]}"
        )
    store = FeatureStore(settings, spark)
    for offset in range(days + 1):
        build = store.build(first + timedelta(days=offset))
        log(f"  features {build.day}: {build.features} events, {build.profiles} profiles")
    rows, version = store.refresh_training_set()
    log(f"  training set: {rows} labelled rows (v{version})")
    log(f"  model: {retrain_and_promote(spark, settings, store.table('training_set'))}")
    night = NightlyBatch(
        settings,
        spark,
        on_step=lambda s: log(f"    {s.name:<16}{s.rows:>8} rows {s.seconds:6.1f}s {s.detail}"),
    )
    for offset in range(days):
        day = first + timedelta(days=offset)
        log(f"  night of {day}")
        night.run(day, ingest=False)

    log(f"[demo] 3/4 speed layer: live events for {stream_seconds:.0f}s")
    stop = threading.Event()
    dripper = threading.Thread(
        target=datagen.follow,
        kwargs={"settings": settings, "duration_s": stream_seconds, "stop": stop},
        daemon=True,
    )
    dripper.start()
    SpeedLayer(settings, spark, log=log).run(timeout=stream_seconds + 5)
    stop.set()
    dripper.join(timeout=30)

    log("[demo] 4/4 reconcile and report")
    audit = Reconciler(settings, spark).run(today)
    summary.lines.append(
        f"today {today}: speed rows {audit.speed_rows}, batch rows {audit.batch_rows}, speed only {audit.speed_only}"
    )
    time.sleep(0)
    return summary
