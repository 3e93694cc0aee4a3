"""The same work on both Delta engines, side by side in one run and one SparkSession.

For each engine (``rs``: embedded delta-rs, ``spark``: delta-spark), in a fresh lakehouse
over the same landing zone:

- ingest: every landed file through bronze, silver and quarantine (``Ingestor.run_batch``);
- micro-batch: one small landed file through the same three tables, as a stream's batch
  commits it (``Ingestor.process``), landed -> committed, median of several;
- merge: a day's rows upserted into a partitioned table keyed by event id (the reconcile's
  serving write);
- read: a full scan of silver.events.

Prints the times, then one JSON line per metric with the ratio rs / spark (below 1: the
embedded engine is faster), which is what ``delta.engine: auto`` follows::

    .venv/bin/python bench/engines.py --events 300000
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._lib.common import REPO

ENGINES = ("rs", "spark")


def settings_for(root: Path, engine: str):
    from medallion.config import load_settings

    return load_settings(
        environ={}, directory=REPO / "conf", overrides=[f"storage.root={root}", f"delta.engine={engine}"]
    )


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run(spark, landing: Path, scratch: Path, engine: str, micro_batches: int) -> dict[str, float]:
    from pyspark.sql import functions as F

    from medallion.bronze import read_landing
    from medallion.datagen import generate_history
    from medallion.ingest import Ingestor
    from medallion.tables import Lakehouse

    root = scratch / engine
    shutil.copytree(landing, root / "landing")
    settings = settings_for(root, engine)
    ingestor = Ingestor(settings, spark)
    figures = {"ingest": timed(ingestor.run_batch)}

    # Micro-batches: a small file lands, the batch commits it to bronze, silver and quarantine.
    small = scratch / f"{engine}-small"
    times = []
    for n in range(micro_batches):
        tick = settings_for(small / str(n), engine)
        generate_history(tick, days=1, events_per_day=1000, seed=100 + n, progress=False)
        files = sorted(Path(tick.storage.landing_events).glob("*.jsonl"))[:1]
        landed = read_landing(spark, [str(f) for f in files])
        times.append(
            timed(lambda landed=landed, n=n: ingestor.process("events", landed, "bench", n).release())
        )
    figures["micro-batch"] = statistics.median(times)

    lake = Lakehouse(settings, spark)
    silver = lake.table("silver", "events")
    day = silver.read().agg(F.max("event_date")).first()[0]
    rows = silver.read().where(F.col("event_date") == day).select("event_id", "event_date", "amount")
    rows = rows.withColumn("amount", F.col("amount") + 1).localCheckpoint()
    target = lake.create("gold", "merged", rows.schema, partition_by=["event_date"])
    target.append(rows.where(F.col("event_id") < "m"))
    figures["merge"] = timed(lambda: target.merge(rows, on="event_id", partition={"event_date": day}))
    figures["read"] = timed(lambda: silver.read().write.format("noop").mode("overwrite").save())
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000, help="events landed for the ingest")
    parser.add_argument("--micro-batches", type=int, default=5)
    args = parser.parse_args()

    from medallion.datagen import generate_history
    from medallion.ingest import Ingestor
    from medallion.spark import get_spark

    scratch = Path(tempfile.mkdtemp(prefix="medallion-bench-engines-"))
    try:
        seed_settings = settings_for(scratch / "seed", "rs")
        spark = get_spark(settings_for(scratch / "seed", "spark"))
        days = 3
        print(f"== landing {args.events} events over {days} days", flush=True)
        generate_history(seed_settings, days=days, events_per_day=args.events // days, progress=False)
        # Both engines once on a tiny landing first: the engine measured first would otherwise
        # pay the JVM's warm-up (class loading, the JIT) in its ingest.
        for engine in ENGINES:
            tiny = settings_for(scratch / f"warm-{engine}", engine)
            generate_history(tiny, days=1, events_per_day=500, progress=False)
            Ingestor(tiny, spark).run_batch()
        figures = {}
        for engine in ENGINES:
            print(f"== {engine}", flush=True)
            figures[engine] = run(spark, scratch / "seed" / "landing", scratch, engine, args.micro_batches)
            print("  " + ", ".join(f"{k} {v:.2f} s" for k, v in figures[engine].items()), flush=True)
        for metric in figures["rs"]:
            ratio = figures["rs"][metric] / figures["spark"][metric]
            print(
                json.dumps(
                    {
                        "bench": "engines",
                        "metric": f"{metric} rs/spark",
                        "ratio": round(ratio, 3),
                        "target": "<= 1.0",
                        "ok": ratio <= 1.0,
                        "rs_s": round(figures["rs"][metric], 3),
                        "spark_s": round(figures["spark"][metric], 3),
                    }
                ),
                flush=True,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
