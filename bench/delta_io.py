"""Delta I/O through the rs engine against plain parquet, measured in the same run.

Writes then fully scans N rows of the silver events schema two ways: ``Table.append`` /
``Table.read`` (engine ``rs``) and ``df.write.parquet`` / ``spark.read.parquet``. Prints the
absolute times and ratios, then one JSON line per metric::

    .venv/bin/python bench/delta_io.py --rows 5000000

Targets (issue 5): write <= 1.3x and read <= 1.2x plain parquet.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")


def events(spark, rows: int):
    """``rows`` synthetic silver events, computed from ``range`` (no driver data)."""
    from pyspark.sql import functions as F

    day = F.date_add(F.lit("2026-11-01").cast("date"), (F.col("id") % 14).cast("int"))
    df = spark.range(rows).select(
        F.concat(F.lit("ev-"), F.col("id").cast("string")).alias("event_id"),
        F.concat(F.lit("card-"), (F.col("id") % 1000).cast("string")).alias("card_id"),
        F.concat(F.lit("m-"), (F.col("id") % 300).cast("string")).alias("merchant_id"),
        F.element_at(
            F.array(*[F.lit(c) for c in ("grocery", "fuel", "travel", "gaming")]),
            (F.col("id") % 4 + 1).cast("int"),
        ).alias("merchant_category"),
        ((F.col("id") % 100000) / 100).cast("decimal(18,2)").alias("amount"),
        F.lit("EUR").alias("currency"),
        F.lit("DE").alias("country"),
        F.lit("pos").alias("channel"),
        (
            F.lit("2026-11-01 00:00:00").cast("timestamp") + F.make_interval(secs=F.col("id") % 1_209_600)
        ).alias("event_ts"),
        day.alias("event_date"),
        F.lit("landing/events/part-0.jsonl").alias("source_file"),
        F.current_timestamp().alias("ingested_at"),
    )
    return df


def noop(df) -> None:
    """A full scan: every column read and materialised, nothing written."""
    df.write.format("noop").mode("overwrite").save()


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from medallion.config import load_settings
    from medallion.schemas import SILVER_EVENTS_SCHEMA
    from medallion.spark import get_spark
    from medallion.tables import Table

    spark = get_spark(load_settings(env="local", environ={}, directory=REPO / "conf"))
    # Both sides write TIMESTAMP_MICROS (what Delta needs), so the baseline is like for like.
    spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    root = Path(tempfile.mkdtemp(prefix="delta_io_"))
    try:
        df = events(spark, args.rows).repartition(4)
        schema = SILVER_EVENTS_SCHEMA

        # Warm the JVM and Python workers on a small run of both paths.
        warm = Table.create(spark, str(root / "warm"), schema)
        warm.append(events(spark, 10_000))
        events(spark, 10_000).write.parquet(str(root / "warm_parquet"))

        # Alternate the two paths and keep each one's best of --repeats: JIT warm-up and
        # page cache then favour neither.
        times: dict[str, list[float]] = {"write_plain": [], "write_rs": [], "read_plain": [], "read_rs": []}
        for run in range(args.repeats):
            plain, table = str(root / f"parquet{run}"), Table.create(spark, str(root / f"delta{run}"), schema)
            times["write_plain"].append(timed(lambda: df.write.parquet(plain)))  # noqa: B023
            times["write_rs"].append(timed(lambda: table.append(df)))  # noqa: B023
            times["read_plain"].append(timed(lambda: noop(spark.read.parquet(plain))))  # noqa: B023
            times["read_rs"].append(timed(lambda: noop(table.read())))  # noqa: B023
            assert table.read().count() == args.rows
        write_plain, write_rs, read_plain, read_rs = (min(times[k]) for k in times)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    metrics = [
        ("write_vs_parquet", write_rs, write_plain, 1.3),
        ("full_scan_vs_parquet", read_rs, read_plain, 1.2),
    ]
    print(f"delta_io: {args.rows:,} rows of the silver events schema, rs engine vs plain parquet")
    for name, ours, base, target in metrics:
        print(
            f"  {name:<22} rs {ours:7.2f} s   parquet {base:7.2f} s   ratio {ours / base:5.2f} (target <= {target})"
        )
    for name, ours, base, target in metrics:
        ratio = round(ours / base, 3)
        print(
            json.dumps(
                {
                    "bench": "delta_io",
                    "metric": name,
                    "ratio": ratio,
                    "target": f"<= {target}",
                    "ok": ratio <= target,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
