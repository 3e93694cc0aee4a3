"""Ingest throughput: medallion against the delta-spark pipeline a user would write, and
against a plain JSON-to-parquet copy.

Generates N events with the project's generator, lands them in ``--batches`` batches (days
in order), then in the same run and SparkSession (built with ``delta.engine=spark``, so
Delta's extension is there):

- peer: the textbook delta-spark pipeline (:mod:`bench._lib.delta_spark_peer`): per batch and
  feed, ``spark.read.text`` -> ``from_json`` with the typed landing schema, cached once ->
  bronze append, silver = the valid rows (events: ``dropDuplicates`` on the event id, then one
  ``DeltaTable`` ``MERGE`` ... ``whenNotMatchedInsertAll``), quarantine append of the rest.
  Its validity rules, the simple subset of medallion's silver checks: line at most
  ``MAX_LINE_BYTES``; every field present and of its type (so not-JSON, truncated, missing
  field, non-numeric amount and unparseable timestamp lines fail); ``amount >= 0``;
  currency, channel, country and merchant category in their vocabularies.
- medallion: ``Ingestor.run_batch`` (what ``medallion ingest`` runs) after each batch landed,
  on each engine of ``--engines`` (``rs``: embedded delta-rs, ``spark``: delta-spark), each
  in its own lakehouse.

Every pipeline ingests both feeds (events and labels) of a batch before the next pipeline
runs; the order rotates from batch to batch. All of them first run once on a tiny landing
(the JVM's warm-up). Throughput is landed event lines per second of ingest.

Then the ``read.json`` floor, as before: ``spark.read.json(landing) -> write.parquet`` of
the whole landing against medallion's bronze+silver (on the default engine) plus
``FeatureStore.build`` for every day (target: >= 0.5x); unless ``--no-floor``, also the
outputs alone (:func:`bare_outputs`) against that baseline run again.

Prints the figures, one JSON line per comparison, and last the JSON line of medallion's
ingest on the default engine (what ``delta.engine: auto`` picks) against the peer::

    .venv/bin/python bench/ingest.py --events 2000000

Target (issue 31): medallion's ingest >= 1.0x the peer's throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")

FEEDS = ("events", "labels")
ENGINES = ("rs", "spark")
PEER = "peer"
_DAY = re.compile(r"(\d{8})")


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


def fail(message: str) -> NoReturn:
    print(f"bench/ingest.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def settings_for(root: Path, engine: str):
    from medallion.config import load_settings

    return load_settings(
        environ={}, directory=REPO / "conf", overrides=[f"storage.root={root}", f"delta.engine={engine}"]
    )


def landed_batches(settings, batches: int) -> list[dict[str, list[str]]]:
    """The landing files of each feed split into ``batches`` groups of consecutive days
    (a file's day is the date in its name)."""
    folders = {"events": settings.storage.landing_events, "labels": settings.storage.landing_labels}
    by_day: dict[str, dict[str, list[str]]] = {}
    for feed, folder in folders.items():
        for path in sorted(Path(folder).glob("*.jsonl")):
            day = _DAY.search(path.name)
            if day is None:
                raise ValueError(f"landing file {path.name} has no date in its name")
            by_day.setdefault(day.group(1), {f: [] for f in FEEDS})[feed].append(str(path))
    days = sorted(by_day)
    if batches < 1 or batches > len(days):
        fail(f"--batches {batches}: expected 1 to {len(days)} (the landed days)")
    groups = []
    for k in range(batches):
        chosen = days[k * len(days) // batches : (k + 1) * len(days) // batches]
        groups.append({feed: [p for day in chosen for p in by_day[day][feed]] for feed in FEEDS})
    return groups


def line_count(paths: list[str]) -> int:
    count = 0
    for path in paths:
        with open(path, "rb") as handle:
            count += sum(chunk.count(b"\n") for chunk in iter(lambda h=handle: h.read(1 << 20), b""))
    return count


class MedallionRun:
    """medallion's nightly ingest in its own lakehouse: files land, then ``run_batch``."""

    def __init__(self, spark, root: Path, engine: str):
        self.spark, self.engine = spark, engine
        self.settings = settings_for(root, engine)

    def run_batch(self, files: dict[str, list[str]]) -> None:
        from medallion.ingest import Ingestor

        folders = {
            "events": self.settings.storage.landing_events,
            "labels": self.settings.storage.landing_labels,
        }
        for feed, paths in files.items():
            Path(folders[feed]).mkdir(parents=True, exist_ok=True)
            for path in paths:
                # A hard link lands the file as it is (same bytes, same settled mtime), uncopied.
                os.link(path, os.path.join(folders[feed], os.path.basename(path)))
        Ingestor(self.settings, self.spark).run_batch()

    def counts(self, feed: str) -> tuple[int, int, int]:
        from pyspark.sql import functions as F

        from medallion.tables import Lakehouse

        lake = Lakehouse(self.settings, self.spark)
        quarantine = lake.table("silver", "quarantine").read().where(F.col("feed") == feed)
        return (
            lake.table("bronze", feed).read().count(),
            lake.table("silver", feed).read().count(),
            quarantine.count(),
        )


class PeerRun:
    """:class:`~bench._lib.delta_spark_peer.TextbookIngest` over the same files."""

    def __init__(self, spark, root: Path):
        from bench._lib.delta_spark_peer import TextbookIngest

        self.ingest = TextbookIngest(spark, root)

    def run_batch(self, files: dict[str, list[str]]) -> None:
        self.ingest.run_batch(files)

    def counts(self, feed: str) -> tuple[int, int, int]:
        found = self.ingest.counts(feed)
        return found.bronze, found.silver, found.quarantine


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def pipelines(spark, root: Path, engines: tuple[str, ...]) -> dict[str, MedallionRun | PeerRun]:
    runs: dict[str, MedallionRun | PeerRun] = {PEER: PeerRun(spark, root / PEER)}
    for engine in engines:
        runs[engine] = MedallionRun(spark, root / engine, engine)
    return runs


def label(name: str) -> str:
    return "peer      delta-spark textbook" if name == PEER else f"medallion ingest, delta.engine={name:<5}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument(
        "--batches", type=int, default=2, help="landing batches (groups of days), each one MERGE"
    )
    parser.add_argument(
        "--engines", default=",".join(ENGINES), help="medallion's Delta engines to run, comma-separated"
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the floor (saves about 40 s)")
    args = parser.parse_args()
    engines = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    if not engines or any(e not in ENGINES for e in engines):
        fail(f"--engines {args.engines!r}: expected some of {', '.join(ENGINES)}")

    from medallion.datagen import generate_history
    from medallion.errors import MedallionError
    from medallion.features import FeatureStore
    from medallion.spark import get_spark
    from medallion.tables.engine import resolve_engine

    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        seed = settings_for(workdir / "seed", "auto")
        end = date(2026, 11, 20)
        print(f"generating {args.events:,} events over {args.days} days ...", flush=True)
        generate_history(seed, days=args.days, events_per_day=args.events // args.days, end_date=end)
        # delta.engine=spark: the session gets Delta's extension, which the peer needs.
        spark = get_spark(settings_for(workdir / "seed", "spark"))
        try:
            resolve_engine(spark, settings_for(workdir / "seed", "spark"))
            default_engine = resolve_engine(spark, seed)[0]
        except MedallionError as exc:
            fail(f"the peer needs delta-spark: {exc}")
        if default_engine not in engines:
            engines = (*engines, default_engine)

        batches = landed_batches(seed, args.batches)
        event_lines = line_count([p for batch in batches for p in batch["events"]])
        label_lines = line_count([p for batch in batches for p in batch["labels"]])
        print(
            f"landed {event_lines:,} event lines and {label_lines:,} label lines, in {len(batches)} batch(es)"
        )

        # Every pipeline once on a tiny landing: the first measured would otherwise pay the
        # JVM's warm-up (class loading, the JIT).
        tiny = settings_for(workdir / "tiny", "auto")
        generate_history(tiny, days=1, events_per_day=500, end_date=end, progress=False)
        for run in pipelines(spark, workdir / "warm", engines).values():
            run.run_batch(landed_batches(tiny, 1)[0])

        runs = pipelines(spark, workdir / "runs", engines)
        seconds = dict.fromkeys(runs, 0.0)
        order = list(runs)
        for k, files in enumerate(batches):
            for name in order[k % len(order) :] + order[: k % len(order)]:
                took = timed(lambda run=runs[name], files=files: run.run_batch(files))
                seconds[name] += took
                print(f"  batch {k + 1}/{len(batches)} {label(name)} {took:7.1f}s", flush=True)

        print(
            f"ingest of both feeds ({event_lines:,} event lines), rows per table: bronze / silver / quarantine"
        )
        for name, run in runs.items():
            rows = {feed: run.counts(feed) for feed in FEEDS}
            print(
                f"{label(name)} {seconds[name]:8.1f}s  {event_lines / seconds[name]:10,.0f} events/s   "
                + "   ".join(f"{feed} {' / '.join(f'{n:,}' for n in rows[feed])}" for feed in FEEDS)
            )

        # The read.json floor (issue 6), on the default engine's lakehouse.
        landing = {"events": seed.storage.landing_events, "labels": seed.storage.landing_labels}
        baseline_s = timed(lambda: json_to_parquet(spark, landing, workdir / "plain"))
        store = FeatureStore(runs[default_engine].settings, spark)
        gold_s = timed(lambda: store.build(end - timedelta(days=args.days - 1), end))  # a backfill: one pass
        medallion_s = seconds[default_engine] + gold_s
        floor_ratio = baseline_s / medallion_s
        print(
            f"baseline  json -> parquet        {baseline_s:8.1f}s  {event_lines / baseline_s:12,.0f} events/s"
        )
        print(
            f"medallion bronze+silver+gold     {medallion_s:8.1f}s  {event_lines / medallion_s:12,.0f} events/s"
            f"  (delta.engine={default_engine}: bronze+silver {seconds[default_engine]:.1f}s,"
            f" gold features for {args.days} days {gold_s:.1f}s)"
        )
        print(f"throughput ratio against read.json {floor_ratio:.3f} (target >= 0.5)")
        floor = {
            "bench": "ingest",
            "metric": "throughput_vs_json_to_parquet",
            "ratio": round(floor_ratio, 3),
            "target": ">= 0.5",
            "ok": floor_ratio >= 0.5,
            "events_per_s": round(event_lines / medallion_s),
        }
        if not args.no_floor:
            warm_baseline_s = timed(lambda: json_to_parquet(spark, landing, workdir / "plain_again"))
            gold = {name: store.table(name).read() for name in ("card_profiles", "features")}
            floor_s = timed(lambda: bare_outputs(spark, landing, gold, workdir / "bare"))
            floor["floor_ratio"] = round(warm_baseline_s / floor_s, 3)
            print(
                f"floor     the outputs alone       {floor_s:8.1f}s  (raw lines, from_json fields, gold rows copied;"
                f" no checks, dedupe, quarantine, Delta or gold computation)"
            )
            print(
                f"          against the baseline again {warm_baseline_s:5.1f}s: ratio {floor['floor_ratio']:.3f},"
                " the most any implementation could reach here"
            )
        print(json.dumps(floor))

        peer_rate = event_lines / seconds[PEER]
        for engine in sorted(engines, key=lambda e: e == default_engine):  # the default engine last
            ratio = seconds[PEER] / seconds[engine]  # throughput ratio: medallion's events/s over the peer's
            print(
                json.dumps(
                    {
                        "bench": "ingest",
                        "metric": f"throughput_vs_delta_spark_textbook (delta.engine={engine}"
                        + (", the default)" if engine == default_engine else ")"),
                        "ratio": round(ratio, 3),
                        "target": ">= 1.0",
                        "ok": ratio >= 1.0,
                        "events_per_s": round(event_lines / seconds[engine]),
                        "peer_events_per_s": round(peer_rate),
                    }
                ),
                flush=True,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
