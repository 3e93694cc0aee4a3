"""Speed-layer latency and sustained rate against a bare file stream, measured in the same run.

Events are dripped live by ``medallion datagen --follow`` in a separate process (so the
generator does not compete for the driver's GIL). Two queries read the same kind of
landing folder with the same trigger:

- baseline: a bare file stream -> memory sink, no work;
- medallion: the speed layer (bronze, silver, quarantine, features, champion, predictions,
  serving upsert), exactly as ``medallion stream`` runs it.

Latency of an event = the commit time of the micro-batch that holds it (trigger start +
trigger duration, from the query's progress) minus the landing file's modification time.
Each query first runs a warm-up drip (``--warmup`` seconds, same rate) that is not
measured: the first batches of a fresh JVM pay for class loading and JIT compilation,
which a long-running stream pays once.
The sustained rate is the highest drip rate whose latency does not grow over the run
(median latency of the last third <= 1.5x the first third + one trigger interval).

    .venv/bin/python bench/stream_latency.py                 # 1k/s for 60 s, then rates up to 8k/s
    .venv/bin/python bench/stream_latency.py --seconds 20 --rates 500,1000

Targets (issue 9): p95 latency <= 2x the bare stream's; sustained rate >= 0.5x the bare
stream's. Last line JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lib.common import REPO, settings_for, train_champion

TRIGGER = "1 second"
TRIGGER_S = 1.0
WARMUP_S = 10.0  # set from --warmup


def drip(root: Path, rate: float, seconds: float) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "medallion.cli",
        "datagen",
        "--follow",
        "--rate",
        str(rate),
        "--duration",
        str(seconds),
        "--set",
        f"storage.root={root}",
        "--set",
        "datagen.cards=2000",
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)


def warm_up(query, root: Path, rate: float) -> float:
    """Drip WARMUP_S seconds the query processes unmeasured; returns when measuring starts."""
    query.processAllAvailable()  # the first (empty) batch
    if WARMUP_S > 0:
        drip(root, rate, WARMUP_S).wait()
        query.processAllAvailable()
    return time.time()


def batch_commit_times(query) -> dict[int, float]:
    """batch id -> epoch seconds at which the batch committed (trigger start + its duration)."""
    commits = {}
    for progress in query.recentProgress:
        if not progress.numInputRows:
            continue
        started = datetime.fromisoformat(progress.timestamp.replace("Z", "+00:00")).timestamp()
        commits[int(progress.batchId)] = started + progress.durationMs.get("triggerExecution", 0) / 1000
    return commits


def summarise(latencies: list[tuple[float, float]]) -> dict[str, float]:
    """``latencies``: (landed epoch s, latency s) per event."""
    import numpy as np

    landed = np.array([t for t, _ in latencies])
    values = np.array([v for _, v in latencies])
    order = np.argsort(landed)
    values = values[order]
    third = max(1, len(values) // 3)
    first, last = float(np.median(values[:third])), float(np.median(values[-third:]))
    return {
        "events": len(values),
        "p50_s": float(np.percentile(values, 50)),
        "p95_s": float(np.percentile(values, 95)),
        "first_third_p50_s": first,
        "last_third_p50_s": last,
        "sustained": last <= 1.5 * first + TRIGGER_S,
    }


def run_bare(spark, root: Path, rate: float, seconds: float) -> dict[str, float]:
    from pyspark.sql import functions as F

    from medallion.bronze import read_landing

    settings = settings_for(root)
    landing = Path(settings.storage.landing_events)
    landing.mkdir(parents=True, exist_ok=True)
    frame = read_landing(spark, str(landing), stream=True).select(
        "landed_at", F.current_timestamp().alias("batch_ts")
    )
    name = f"bare_{int(rate)}_{int(time.time())}"
    query = (
        frame.writeStream.format("memory")
        .queryName(name)
        .option("checkpointLocation", str(root / "checkpoints" / name))
        .trigger(processingTime=TRIGGER)
        .start()
    )
    measured_from = warm_up(query, root, rate)
    dripper = drip(root, rate, seconds)
    dripper.wait()
    query.processAllAvailable()
    query.stop()
    commits = sorted(batch_commit_times(query).items())
    # Rows carry their batch's timestamp; the k-th distinct timestamp is the k-th non-empty batch.
    rows = (
        spark.table(name)
        .select(F.col("landed_at").cast("double"), F.col("batch_ts").cast("double"))
        .collect()
    )
    stamps = sorted({r.batch_ts for r in rows})
    commit_of = {stamp: commits[index][1] for index, stamp in enumerate(stamps) if index < len(commits)}
    return summarise(
        [
            (r.landed_at, commit_of[r.batch_ts] - r.landed_at)
            for r in rows
            if r.batch_ts in commit_of and r.landed_at >= measured_from
        ]
    )


def run_medallion(spark, root: Path, registry: Path, rate: float, seconds: float) -> dict[str, float]:
    from pyspark.sql import functions as F

    from medallion.streaming.speed import SpeedLayer
    from medallion.tables import Lakehouse

    settings = settings_for(
        root, registry, "stream.trigger.kind=processingTime", f"stream.trigger.interval={TRIGGER}"
    )
    Path(settings.storage.landing_events).mkdir(parents=True, exist_ok=True)
    speed = SpeedLayer(settings, spark, log=lambda line: None)
    query = speed.start()
    try:
        measured_from = warm_up(query, root, rate)
        dripper = drip(root, rate, seconds)
        dripper.wait()
        query.processAllAvailable()
    finally:
        speed.gate.stop(query)
        speed.stopped()
    commits = batch_commit_times(query)
    rows = (
        Lakehouse(settings, spark)
        .table("gold", "predictions_speed")
        .read()
        .select(F.col("landed_at").cast("double"), "batch_id")
        .collect()
    )
    return summarise(
        [
            (r.landed_at, commits[r.batch_id] - r.landed_at)
            for r in rows
            if r.batch_id in commits and r.landed_at >= measured_from
        ]
    )


def main() -> None:
    global WARMUP_S
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000, help="events/s of the latency run")
    parser.add_argument("--seconds", type=float, default=60, help="length of the latency run")
    parser.add_argument(
        "--rates", default="1000,2000,4000,8000", help="drip rates of the sustained-rate runs"
    )
    parser.add_argument("--rate-seconds", type=float, default=20, help="length of each sustained-rate run")
    parser.add_argument("--warmup", type=float, default=WARMUP_S, help="unmeasured drip before each run")
    args = parser.parse_args()
    WARMUP_S = args.warmup

    from medallion.spark import get_spark

    workdir = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    try:
        spark = get_spark(settings_for(workdir / "train"))
        spark.sparkContext.setLogLevel("ERROR")
        # Commit times come from each query's recent progress, which keeps 100 batches by
        # default: a run longer than that would lose its first batches' times.
        spark.conf.set("spark.sql.streaming.numRecentProgressUpdates", "100000")
        print("training a champion on a small history ...", flush=True)
        registry = train_champion(spark, workdir / "train")
        run = 0

        def fresh() -> Path:
            nonlocal run
            run += 1
            return workdir / f"run-{run}"

        print(f"latency at {args.rate:.0f} events/s for {args.seconds:.0f}s, trigger {TRIGGER}", flush=True)
        bare = run_bare(spark, fresh(), args.rate, args.seconds)
        ours = run_medallion(spark, fresh(), registry, args.rate, args.seconds)
        for label, figures in (("bare file stream -> memory", bare), ("medallion speed layer", ours)):
            print(
                f"  {label:<28} {figures['events']:>8} events  p50 {figures['p50_s']:6.2f}s  p95 {figures['p95_s']:6.2f}s"
            )
        latency_ratio = ours["p95_s"] / bare["p95_s"]

        rates = [float(r) for r in args.rates.split(",")]
        runners = {
            "bare": lambda r: run_bare(spark, fresh(), r, args.rate_seconds),
            "medallion": lambda r: run_medallion(spark, fresh(), registry, r, args.rate_seconds),
        }
        sustained = {}
        for label, runner in runners.items():
            sustained[label] = 0.0
            for rate in rates:  # ascending: stop at the first rate it cannot keep up with
                figures = runner(rate)
                verdict = "keeps up" if figures["sustained"] else "falls behind"
                print(
                    f"  {rate:>7.0f}/s {label:<10} {verdict:<13} latency p50 first third "
                    f"{figures['first_third_p50_s']:.2f}s, last third {figures['last_third_p50_s']:.2f}s",
                    flush=True,
                )
                if not figures["sustained"]:
                    break
                sustained[label] = rate
        rate_ratio = sustained["medallion"] / sustained["bare"] if sustained["bare"] else 0.0
        print(f"sustained rate: bare {sustained['bare']:.0f}/s, medallion {sustained['medallion']:.0f}/s")
        print(
            f"p95 latency ratio {latency_ratio:.2f} (target <= 2); sustained rate ratio {rate_ratio:.2f} (>= 0.5)"
        )
        print(
            json.dumps(
                {
                    "bench": "stream_latency",
                    "metric": "p95_latency_vs_bare_file_stream",
                    "ratio": round(latency_ratio, 3),
                    "target": "<= 2",
                    "ok": latency_ratio <= 2 and rate_ratio >= 0.5,
                    "p50_s": round(ours["p50_s"], 3),
                    "p95_s": round(ours["p95_s"], 3),
                    "bare_p95_s": round(bare["p95_s"], 3),
                    "sustained_rate_ratio": round(rate_ratio, 3),
                    "sustained_target": ">= 0.5",
                    "sustained_events_per_s": sustained["medallion"],
                    "bare_sustained_events_per_s": sustained["bare"],
                }
            )
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
