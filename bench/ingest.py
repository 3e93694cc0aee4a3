"""Ingest throughput: landing -> bronze -> silver -> gold against a plain JSON-to-parquet copy.

Generates N events with the project's generator, then in the same run:

- baseline: ``spark.read.json(landing) -> write.parquet`` of the same files (events and
  labels, as medallion ingests both);
- medallion: ``Ingestor.run_batch`` (bronze, silver, quarantine on Delta) plus
  ``FeatureStore.build`` for every day (card profiles, features).

Prints events/s of both and the throughput ratio, then one JSON line::

    .venv/bin/python bench/ingest.py --events 2000000

Target (issue 6): medallion >= 0.5x the baseline's throughput.

Then, unless ``--no-floor``, the floor under any Spark implementation of the issue: its
outputs alone, with no checks, no deduplication, no quarantine, no Delta and no gold
computation (:func:`bare_outputs`), against the baseline run again. Both run warm, after
the rest. Its ratio is the most the target's ratio could reach on this machine.
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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")


def bare_outputs(spark, landing: dict[str, str], gold: dict[str, DataFrame], out: Path) -> None:
    """What the issue's layers must write, computed as cheaply as Spark allows.

    Bronze: each feed's lines with their file and ingest time, as parquet. Silver: the lines
    parsed straight into their typed fields with ``from_json``, unpartitioned parquet. (Spark's
    other JSON parser, ``spark.read.json``, is twice as fast but loses the raw line of each
    row, which quarantine needs, and skips blank lines.) Gold: the rows medallion computed
    (``gold``: name -> rows), only copied to parquet.
    """
    from pyspark.sql import functions as F

    from medallion.schemas import EVENT_FIELDS, LABEL_FIELDS, SILVER_EVENTS_SCHEMA, SILVER_LABELS_SCHEMA

    typed = {
        feed: ", ".join(f"{name} {schema[name].dataType.simpleString()}" for name in fields)
        for feed, fields, schema in (
            ("events", EVENT_FIELDS, SILVER_EVENTS_SCHEMA),
            ("labels", LABEL_FIELDS, SILVER_LABELS_SCHEMA),
        )
    }
    for feed, folder in landing.items():
        lines = spark.read.text(folder).select(
            F.col("value").alias("raw"), F.col("_metadata.file_path").alias("source_file")
        )
        lines.withColumn("ingested_at", F.current_timestamp()).write.parquet(str(out / "bronze" / feed))
        parsed = lines.select(F.from_json("raw", typed[feed]).alias("row"), "source_file")
        parsed.select("row.*", "source_file").write.parquet(str(out / "silver" / feed))
    for name, rows in gold.items():
        rows.write.parquet(str(out / "gold" / name))


def json_to_parquet(spark, landing: dict[str, str], out: Path) -> None:
    """The baseline: each feed read as JSON (schema inferred) and written as parquet."""
    for feed, folder in landing.items():
        spark.read.json(folder).write.parquet(str(out / feed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--no-floor", action="store_true", help="skip the floor (saves about 40 s)")
    args = parser.parse_args()

    from medallion.config import load_settings
    from medallion.datagen import generate_history
    from medallion.features import FeatureStore
    from medallion.ingest import Ingestor
    from medallion.spark import get_spark

    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        settings = load_settings(environ={}, directory=REPO / "conf", overrides=[f"storage.root={workdir}"])
        end = date(2026, 11, 20)
        print(f"generating {args.events:,} events over {args.days} days ...", flush=True)
        generate_history(settings, days=args.days, events_per_day=args.events // args.days, end_date=end)
        spark = get_spark(settings)

        landing = {"events": settings.storage.landing_events, "labels": settings.storage.landing_labels}
        started = time.perf_counter()
        json_to_parquet(spark, landing, workdir / "plain")
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
        result = {
            "bench": "ingest",
            "metric": "throughput_vs_json_to_parquet",
            "ratio": round(ratio, 3),
            "target": ">= 0.5",
            "ok": ratio >= 0.5,
            "events_per_s": round(args.events / medallion_s),
        }
        if not args.no_floor:
            started = time.perf_counter()
            json_to_parquet(spark, landing, workdir / "plain_again")
            warm_baseline_s = time.perf_counter() - started
            gold = {name: store.table(name).read() for name in ("card_profiles", "features")}
            started = time.perf_counter()
            bare_outputs(spark, landing, gold, workdir / "bare")
            floor_s = time.perf_counter() - started
            result["floor_ratio"] = round(warm_baseline_s / floor_s, 3)
            print(
                f"floor     the outputs alone       {floor_s:8.1f}s  (raw lines, from_json fields, gold rows copied;"
                f" no checks, dedupe, quarantine, Delta or gold computation)"
            )
            print(
                f"          against the baseline again {warm_baseline_s:5.1f}s: ratio {result['floor_ratio']:.3f},"
                " the most any implementation could reach here"
            )
        print(json.dumps(result))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
