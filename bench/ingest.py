"""Ingest throughput: landing -> bronze -> silver -> gold against a plain JSON-to-parquet copy.

Generates N events with the project's generator, then in the same run:

- baseline: ``spark.read.json(landing) -> write.parquet`` of the same files (events and
  labels, as medallion ingests both);
- medallion: ``Ingestor.run_batch`` (bronze, silver, quarantine on Delta) plus
  ``FeatureStore.build`` for every day (card profiles, features).

Prints events/s of both and the throughput ratio, then one JSON line::

    .venv/bin/python bench/ingest.py --events 2000000

Target (issue 6): medallion >= 0.5x the baseline's throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=10)
    args = parser.parse_args()

    from medallion.config import load_settings
    from medallion.datagen import generate_history
    from medallion.featurestore import FeatureStore
    from medallion.ingest import Ingestor
    from medallion.spark import get_spark

    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        settings = load_settings(environ={}, directory=REPO / "conf", overrides=[f"storage.root={workdir}"])
        end = date(2026, 11, 20)
        print(f"generating {args.events:,} events over {args.days} days ...", flush=True)
        generate_history(settings, days=args.days, events_per_day=args.events // args.days, end_date=end)
        spark = get_spark(settings)

        started = time.perf_counter()
        for feed, folder in (
            ("events", settings.storage.landing_events),
            ("labels", settings.storage.landing_labels),
        ):
            spark.read.json(folder).write.mode("overwrite").parquet(str(workdir / "plain" / feed))
        baseline_s = time.perf_counter() - started

        started = time.perf_counter()
        Ingestor(settings, spark).run_batch()
        ingest_s = time.perf_counter() - started
        store = FeatureStore(settings, spark)
        store.build(end - timedelta(days=args.days - 1), end)  # a backfill: one pass
        medallion_s = time.perf_counter() - started

        ratio = baseline_s / medallion_s  # throughput ratio: medallion's events/s over the baseline's
        print(
            f"baseline  json -> parquet        {baseline_s:8.1f}s  {args.events / baseline_s:12,.0f} events/s"
        )
        print(
            f"medallion bronze+silver+gold     {medallion_s:8.1f}s  {args.events / medallion_s:12,.0f} events/s"
        )
        print(
            f"  of which bronze+silver {ingest_s:.1f}s, gold features for {args.days} days {medallion_s - ingest_s:.1f}s"
        )
        print(f"throughput ratio {ratio:.3f} (target >= 0.5)")
        print(
            json.dumps(
                {
                    "bench": "ingest",
                    "metric": "throughput_vs_json_to_parquet",
                    "ratio": round(ratio, 3),
                    "target": ">= 0.5",
                    "ok": ratio >= 0.5,
                    "events_per_s": round(args.events / medallion_s),
                }
            )
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
