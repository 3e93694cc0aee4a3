"""Soak: the stream killed again and again beside the night, then every event counted.

    .venv/bin/python bench/soak.py --minutes 30

For ``--minutes``: ``medallion datagen --follow`` drips today's events (malformed, re-sent and
late ones among them); ``medallion stream`` runs and is SIGKILLed at a random point 20-60 s
after each (re)start (``--kill-every``), then restarted; the nightly batch for today and a
reconcile with compaction run on their own schedules at the same time, each a real process.
Then it drains (the drip ends, the stream reads the rest with availableNow, a last night and a
reconcile) and checks:

- every landed line exactly once in bronze, every malformed one in quarantine;
- every valid event exactly once in silver, the batch predictions and serving; at most once
  in the speed predictions (files the night took first are the night's alone);
- no table unreadable; no file in a table's folder that no commit names, past the retention.

It ends with one JSON line: ``{"bench": "soak", "metric": "lost_plus_doubled", "events": ...,
"kills": ..., "lost": ..., "doubled": ..., "ratio": ..., "target": "== 0", "ok": ...}``.
``make test`` runs a 3-minute version (tests/streaming/test_soak.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DRIP_PREFIX = "events-live-"  # medallion.datagen.follow's file names
TABLES = (
    ("bronze", "events"),
    ("silver", "events"),
    ("silver", "quarantine"),
    ("gold", "predictions_speed"),
    ("gold", "predictions_batch"),
    ("gold", "predictions"),
)


@dataclass
class SoakResult:
    events: int = 0
    kills: int = 0
    nights: int = 0
    reconciles: int = 0
    lost: int = 0
    doubled: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.doubled == 0 and not self.problems

    def line(self) -> str:
        return json.dumps(
            {
                "bench": "soak",
                "metric": "lost_plus_doubled",
                "events": self.events,
                "kills": self.kills,
                "nights": self.nights,
                "reconciles": self.reconciles,
                "lost": self.lost,
                "doubled": self.doubled,
                "problems": self.problems,
                "ratio": (self.lost + self.doubled) / max(self.events, 1),
                "target": "== 0",
                "ok": self.ok,
            }
        )


class Soak:
    """One soak run against the lakehouse ``settings`` point at (with a champion already)."""

    def __init__(
        self,
        settings,
        minutes: float,
        rate: float = 20,
        kill_every: tuple[float, float] = (20, 60),
        night_every: float = 75,
        reconcile_every: float = 50,
        seed: int = 7,
        log=print,
    ) -> None:
        self.settings = settings
        self.seconds = minutes * 60
        self.rate = rate
        self.kill_every = kill_every
        self.night_every = night_every
        self.reconcile_every = reconcile_every
        self.rng = random.Random(seed)
        self.log = log
        self.logs = Path(settings.storage.root_path, "soak-logs")
        self.logs.mkdir(parents=True, exist_ok=True)
        self.result = SoakResult()
        self._stop = threading.Event()
        from medallion.clock import Clock

        self.today = Clock.from_settings(settings).today()

    # ------------------------------------------------------------------ processes

    def _command(self, *args: str) -> list[str]:
        storage = self.settings.storage
        return [
            sys.executable,
            "-m",
            "medallion.cli",
            *args,
            "--set",
            f"storage.root={storage.root}",
            "--set",
            f"storage.tracking_uri={storage.mlflow_tracking_uri}",
            "--set",
            f"delta.engine={self.settings.delta.engine}",
        ]

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        env = {**os.environ, "MEDALLION_ENV": "local", "COLUMNS": "200", "PYTHONPATH": str(REPO)}
        if self.settings.clock.today:
            env["MEDALLION__CLOCK__TODAY"] = self.settings.clock.today.isoformat()
        handle = (self.logs / f"{name}.log").open("ab")
        return subprocess.Popen(self._command(*args), stdout=handle, stderr=subprocess.STDOUT, env=env)

    def _run(self, name: str, *args: str, timeout: float = 900) -> None:
        process = self._start(name, *args)
        code = process.wait(timeout=timeout)
        if code != 0:
            tail = (self.logs / f"{name}.log").read_text(errors="replace")[-600:]
            self.result.problems.append(f"{name} exited {code}: {tail.strip().splitlines()[-1:]}")

    def _stream(self, trigger: str) -> subprocess.Popen:
        return self._start(
            "stream",
            "stream",
            "--set",
            f"stream.trigger.kind={trigger}",
            "--set",
            "stream.trigger.interval=1 second",
            "--set",
            "stream.max_files_per_trigger=5",
        )

    # ------------------------------------------------------------------ schedules

    def _started(self, runs: int, process: subprocess.Popen) -> bool:
        """Wait until the stream's log shows its ``runs``-th start (its query is running)."""
        log = self.logs / "stream.log"
        while not self._stop.is_set() and process.poll() is None:
            if log.exists() and log.read_text(errors="replace").count("[stream] started") >= runs:
                return True
            time.sleep(0.2)
        return False

    def _keep_killing_the_stream(self) -> None:
        runs = 0
        while not self._stop.is_set():
            # The interval runs from the restart, so the start-up is part of it; the kill
            # itself still comes at a random point of the running query, never mid-start-up.
            kill_at = time.monotonic() + self.rng.uniform(*self.kill_every)
            process = self._stream("processingTime")
            runs += 1
            started = self._started(runs, process)
            if not started and process.poll() is not None:
                self.result.problems.append(f"the stream exited {process.returncode} before it started")
                return
            running_for = max(kill_at - time.monotonic(), self.rng.uniform(1, 5))
            if self._stop.wait(running_for):
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=300)
                return
            process.kill()
            process.wait(timeout=60)
            self.result.kills += 1
            self.log(f"[soak] kill -9 number {self.result.kills} of the stream")

    def _every(self, seconds: float, work) -> None:
        while not self._stop.wait(seconds):
            work()

    def _night(self) -> None:
        # Tonight's run for today: the drip's events are today's.
        self._run("batch", "batch", "--date", self.today.isoformat(), "--no-reconcile")
        self.result.nights += 1
        self.log(f"[soak] night {self.result.nights} done")

    def _reconcile(self) -> None:
        self._run("reconcile", "reconcile", "--date", self.today.isoformat(), "--compact")
        self.result.reconciles += 1

    # ------------------------------------------------------------------ the run

    def run(self) -> SoakResult:
        self.log(f"[soak] {self.seconds / 60:.1f} minutes under {self.settings.storage.root}")
        drip = self._start(
            "datagen", "datagen", "--follow", "--rate", str(self.rate), "--duration", str(self.seconds)
        )
        workers = [
            threading.Thread(target=self._keep_killing_the_stream, name="stream"),
            threading.Thread(target=self._every, args=(self.night_every, self._night), name="night"),
            threading.Thread(
                target=self._every, args=(self.reconcile_every, self._reconcile), name="reconcile"
            ),
        ]
        for worker in workers:
            worker.start()
        drip.wait(timeout=self.seconds + 300)
        self._stop.set()
        for worker in workers:
            worker.join()
        self.log("[soak] draining: the stream reads the rest, a last night, a reconcile")
        drained = self._stream("availableNow")
        if drained.wait(timeout=900) != 0:
            self.result.problems.append("the draining stream failed")
        self._night()
        self._reconcile()
        return self.result

    # ------------------------------------------------------------------ the checks

    def check(self, spark) -> SoakResult:
        """Count every landed line and event through every table."""
        from pyspark.sql import functions as F

        from medallion.silver import parse_events
        from medallion.tables import Lakehouse

        result = self.result
        lake = Lakehouse(self.settings, spark)
        for layer, name in TABLES:
            try:
                lake.table(layer, name).read().count()
            except Exception as exc:
                result.problems.append(f"{layer}.{name} unreadable: {str(exc).splitlines()[0][:200]}")
        if result.problems:
            return result

        landed = Counter()
        for path in Path(self.settings.storage.landing_events).glob("*.jsonl"):
            landed[path.name] = len(path.read_text().splitlines())
        bronze = lake.table("bronze", "events").read()
        in_bronze = Counter(
            {
                Path(row.source_file).name: row["count"]
                for row in bronze.groupBy("source_file").count().collect()
            }
        )
        for name in landed.keys() | in_bronze.keys():
            result.lost += max(0, landed[name] - in_bronze[name])
            result.doubled += max(0, in_bronze[name] - landed[name])

        parsed = parse_events(bronze)
        # The drip's events: a history ingested before the soak (a champion's training days)
        # was never the nights' to score.
        valid = parse_events(bronze.where(F.col("source_file").contains(f"/{DRIP_PREFIX}")))
        valid = valid.valid.select("event_id").distinct()
        result.events = valid.count()
        quarantined = lake.table("silver", "quarantine").read().where(F.col("feed") == "events").count()
        malformed = parsed.quarantine.count()
        result.lost += max(0, malformed - quarantined)
        result.doubled += max(0, quarantined - malformed)

        for layer, name, exactly_once in (
            ("silver", "events", True),
            ("gold", "predictions_batch", True),
            ("gold", "predictions", True),
            ("gold", "predictions_speed", False),
        ):
            rows = lake.table(layer, name).read().select("event_id")
            total, distinct = rows.count(), rows.distinct().count()
            result.doubled += total - distinct
            if exactly_once:
                missing = valid.join(rows, "event_id", "left_anti").count()
                if missing:
                    result.problems.append(f"{layer}.{name} misses {missing} valid events")
                result.lost += missing
        result.problems += self._orphans(lake)
        return result

    def _orphans(self, lake) -> list[str]:
        """Files in a table's folder that no commit names, older than the vacuum retention."""
        from deltalake import DeltaTable

        retention = 168 * 3600
        found = []
        for layer, name in TABLES:
            root = Path(lake.settings.storage.table_path(layer, name))
            named = {Path(uri.removeprefix("file://")).resolve() for uri in DeltaTable(str(root)).file_uris()}
            for path in root.rglob("*.parquet"):
                if "_delta_log" in path.parts or path.resolve() in named:
                    continue
                if time.time() - path.stat().st_mtime > retention:
                    found.append(f"orphan past retention: {path}")
        return found


def main() -> int:
    from bench._lib.common import settings_for, train_champion

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=20, help="events per second dripped")
    parser.add_argument("--root", type=Path, default=REPO / "bench-out" / "soak")
    parser.add_argument(
        "--kill-every", type=float, nargs=2, default=(20, 60), metavar=("MIN", "MAX"),
        help="seconds from one (re)start of the stream to its next SIGKILL",
    )  # fmt: skip
    args = parser.parse_args()

    from medallion.spark import get_spark

    if args.root.exists():
        import shutil

        shutil.rmtree(args.root)
    args.root.mkdir(parents=True)
    settings = settings_for(args.root)
    spark = get_spark(settings)
    print("[soak] training a champion on a short history", flush=True)
    train_champion(spark, args.root)
    soak = Soak(
        settings,
        args.minutes,
        rate=args.rate,
        kill_every=tuple(args.kill_every),
        log=lambda line: print(line, flush=True),
    )
    soak.run()
    result = soak.check(spark)
    print(
        f"[soak] {result.events} events, {result.kills} kills, {result.nights} nights, "
        f"{result.reconciles} reconciles: lost {result.lost}, doubled {result.doubled}",
        flush=True,
    )
    for problem in result.problems:
        print(f"[soak] problem: {problem}", flush=True)
    print(result.line(), flush=True)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
