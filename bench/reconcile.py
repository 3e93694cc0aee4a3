"""Reconcile one day against a plain Spark join of the same two tables written as parquet.

Builds one day of N events (default 2M): silver ids, batch predictions and speed
predictions (98% of events scored by both, 1% batch only, 1% speed only, 0.1% rejected),
with serving already holding the speed rows, as the stream leaves it before the night.
Then, in the same run, alternating for ``--rounds`` rounds (the best of each counts, so
neither side pays the JVM's warm-up alone):

- baseline: read batch and speed parquet, full outer join (plus the silver ids), pick the
  serving row per event, write it as parquet;
- medallion: ``Reconciler.run(day)``: the same comparison, the audit row, serving's day rebuilt.
  Serving and the audit are restored to their pre-night state between rounds, so every
  round does the whole rebuild.

    .venv/bin/python bench/reconcile.py --events 2000000

Target (issue 10): medallion <= 1.5x the baseline's time. Last line JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")

DAY = date(2026, 11, 20)


def build_inputs(spark, reconciler, events: int) -> None:
    from pyspark.sql import functions as F

    from medallion.schemas import PREDICTIONS_BATCH_SCHEMA, PREDICTIONS_SPEED_SCHEMA, SILVER_EVENTS_SCHEMA
    from medallion.streaming.predictions import serving_rows, upsert_serving

    ids = spark.range(events).select(
        F.col("id"),
        F.format_string("evt-%010d", "id").alias("event_id"),
        (F.abs(F.xxhash64("id")) % 10_000 / 10_000).alias("score"),
    )
    day = F.lit(DAY)
    silver = ids.where(F.col("id") % 1000 != 999).select(  # the 999s are rejected by silver
        "event_id",
        F.concat(F.lit("card-"), (F.col("id") % 50_000).cast("string")).alias("card_id"),
        F.lit("m-1").alias("merchant_id"),
        F.lit("grocery").alias("merchant_category"),
        F.lit(10).cast("decimal(18,2)").alias("amount"),
        F.lit("EUR").alias("currency"),
        F.lit("DE").alias("country"),
        F.lit("pos").alias("channel"),
        F.current_timestamp().alias("event_ts"),
        day.alias("event_date"),
        F.lit("f").alias("source_file"),
        F.current_timestamp().alias("ingested_at"),
    )
    reconciler.silver.append(spark.createDataFrame(silver.rdd, SILVER_EVENTS_SCHEMA))
    prediction = [
        "event_id",
        day.alias("event_date"),
        "score",
        (F.col("score") >= 0.5).alias("decision"),
        F.lit("fraud_model").alias("model_name"),
        F.lit("2").alias("model_version"),
        F.lit("run").alias("run_id"),
    ]
    batch = ids.where((F.col("id") % 100 != 0) & (F.col("id") % 1000 != 999)).select(
        *prediction,
        F.lit(1).cast("long").alias("feature_version"),
        F.current_timestamp().alias("scored_at"),
        F.lit("pandas_udf").alias("scored_by"),
    )
    reconciler.batch.append(spark.createDataFrame(batch.rdd, PREDICTIONS_BATCH_SCHEMA))
    speed = (
        ids.where(F.col("id") % 100 != 1)
        .select(
            *prediction,
            F.lit("champion").alias("variant"),
            F.current_timestamp().alias("event_ts"),
            F.current_timestamp().alias("landed_at"),
            F.current_timestamp().alias("ingested_at"),
            F.current_timestamp().alias("scored_at"),
            (F.col("id") % 500).alias("batch_id"),
            F.lit("pandas_udf").alias("scored_by"),
        )
        # One in ten scored by the previous model, a little differently.
        .withColumns(
            {
                "score": F.when(F.col("event_id").endswith("7"), F.col("score") * 0.9).otherwise(
                    F.col("score")
                ),
                "model_version": F.when(F.col("event_id").endswith("7"), "1").otherwise(
                    F.col("model_version")
                ),
            }
        )
    )
    speed = spark.createDataFrame(speed.rdd, PREDICTIONS_SPEED_SCHEMA)
    reconciler.speed.append(speed)
    upsert_serving(reconciler.serving, serving_rows(speed.toArrow()))


def plain_join(spark, batch_path: str, speed_path: str, silver_path: str, out: str) -> None:
    from pyspark.sql import functions as F

    batch = spark.read.parquet(batch_path).select(
        "event_id", "event_date", F.col("score").alias("b"), F.col("model_version").alias("bv")
    )
    speed = spark.read.parquet(speed_path).select(
        "event_id", F.col("score").alias("s"), F.col("model_version").alias("sv")
    )
    silver = spark.read.parquet(silver_path).select("event_id", F.lit(True).alias("known"))
    joined = batch.join(speed, "event_id", "full_outer").join(silver, "event_id", "left")
    serving = joined.where(F.col("b").isNotNull() | F.col("known").isNotNull()).select(
        "event_id",
        F.coalesce("b", "s").alias("score"),
        F.coalesce("bv", "sv").alias("model_version"),
        F.when(F.col("b").isNotNull(), "batch").otherwise("speed").alias("source"),
        F.col("s").isNull().alias("missing_in_speed"),
    )
    serving.write.mode("overwrite").parquet(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from medallion.config import load_settings
    from medallion.reconcile import Reconciler
    from medallion.spark import get_spark

    workdir = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    try:
        settings = load_settings(environ={}, directory=REPO / "conf", overrides=[f"storage.root={workdir}"])
        spark = get_spark(settings)
        reconciler = Reconciler(settings, spark)
        print(f"building one day of {args.events:,} events (silver, batch, speed, serving) ...", flush=True)
        build_inputs(spark, reconciler, args.events)
        plain = {name: str(workdir / "plain" / name) for name in ("batch", "speed", "silver")}
        reconciler.batch.read().write.parquet(plain["batch"])
        reconciler.speed.read().write.parquet(plain["speed"])
        reconciler.silver.read().select("event_id").write.parquet(plain["silver"])

        before_night = workdir / "before-night"
        for table in (reconciler.serving, reconciler.audit):
            shutil.copytree(table.path, before_night / Path(table.path).name)
        baseline_times, medallion_times = [], []
        for _ in range(args.rounds):
            started = time.perf_counter()
            plain_join(
                spark, plain["batch"], plain["speed"], plain["silver"], str(workdir / "plain" / "serving")
            )
            baseline_times.append(time.perf_counter() - started)

            for table in (reconciler.serving, reconciler.audit):
                shutil.rmtree(table.path)
                shutil.copytree(before_night / Path(table.path).name, table.path)
            started = time.perf_counter()
            audit = Reconciler(settings, spark).run(DAY)
            medallion_times.append(time.perf_counter() - started)
        print("rounds (s): baseline " + ", ".join(f"{t:.1f}" for t in baseline_times), flush=True)
        print("            medallion " + ", ".join(f"{t:.1f}" for t in medallion_times), flush=True)
        baseline_s, medallion_s = min(baseline_times), min(medallion_times)

        ratio = medallion_s / baseline_s
        print(f"baseline  parquet full outer join -> parquet  {baseline_s:8.1f}s (best of {args.rounds})")
        print(f"medallion reconcile (audit + serving rebuild) {medallion_s:8.1f}s (best of {args.rounds})")
        print(
            f"audit: agreed {audit.agreed}, other version {audit.disagreed_other_version}, batch only "
            f"{audit.batch_only}, speed only {audit.speed_only}, rejected {audit.rejected_speed}"
        )
        print(f"time ratio {ratio:.2f} (target <= 1.5)")
        print(
            json.dumps(
                {
                    "bench": "reconcile",
                    "metric": "time_vs_plain_parquet_join",
                    "ratio": round(ratio, 3),
                    "target": "<= 1.5",
                    "ok": ratio <= 1.5,
                    "events": args.events,
                    "seconds": round(medallion_s, 1),
                    "baseline_seconds": round(baseline_s, 1),
                }
            )
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
