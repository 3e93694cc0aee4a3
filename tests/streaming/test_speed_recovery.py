"""The speed layer survives SIGKILL at any point: a real `medallion stream` process, killed and restarted."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from medallion.datagen import generate_history
from medallion.silver import parse_events
from medallion.tables import Lakehouse
from tests.conftest import HISTORY_END

DAY = HISTORY_END


def _stream_command(settings, trigger: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "medallion.cli",
        "stream",
        "--set",
        f"storage.root={settings.storage.root}",
        "--set",
        f"storage.tracking_uri={settings.storage.mlflow_tracking_uri}",
        "--set",
        f"stream.trigger.kind={trigger}",
        "--set",
        "stream.trigger.interval=1 second",
        "--set",
        "stream.max_files_per_trigger=1",
    ]


def _start(settings, trigger: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "MEDALLION_ENV": "local", "COLUMNS": "200"}
    handle = log.open("ab")
    return subprocess.Popen(
        _stream_command(settings, trigger), stdout=handle, stderr=subprocess.STDOUT, env=env
    )


def wait_for_batches(log: Path, count: int, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if text.count("[stream] batch ") >= count or process.poll() is not None:
            return
        time.sleep(0.2)
    raise AssertionError(f"no {count} batches within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.mark.heavy
@pytest.mark.usefixtures("delta_engine")
def test_sigterm_stops_cleanly_and_sigkill_loses_and_duplicates_nothing(spark, lake_with_champion, tmp_path):
    settings = lake_with_champion("datagen.files_per_day=8")
    generate_history(settings, days=1, events_per_day=240, end_date=DAY, progress=False)
    landed = sum(
        len(p.read_text().splitlines()) for p in Path(settings.storage.landing_events).glob("*.jsonl")
    )
    log = tmp_path / "stream.log"
    rng = random.Random(11)

    # A scheduler's stop: SIGTERM ends the run after the current batch, exit code 0.
    process = _start(settings, "processingTime", log)
    wait_for_batches(log, 1, process)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 0, log.read_text(errors="replace")[-3000:]
    assert "SIGTERM: stopping after the current batch" in log.read_text(errors="replace")

    # A crash: SIGKILL at a random moment of a later batch (mid-write included); the soak
    # (tests/streaming/test_soak.py) kills again and again, beside the night.
    seen = log.read_text(errors="replace").count("[stream] batch ")
    process = _start(settings, "processingTime", log)
    wait_for_batches(log, seen + 1, process)
    time.sleep(rng.uniform(0.0, 2.5))
    process.kill()
    process.wait(timeout=30)

    # The restart picks up from the checkpoint and drains the rest.
    process = _start(settings, "availableNow", log)
    assert process.wait(timeout=300) == 0, log.read_text(errors="replace")[-3000:]

    lake = Lakehouse(settings, spark)
    bronze = lake.table("bronze", "events").read()
    silver = lake.table("silver", "events").read()
    speed = lake.table("gold", "predictions_speed").read()
    quarantine = lake.table("silver", "quarantine").read()
    assert bronze.count() == landed
    assert silver.count() == silver.select("event_id").distinct().count()
    assert silver.count() == parse_events(bronze).valid.select("event_id").distinct().count()
    assert quarantine.count() == parse_events(bronze).quarantine.count()
    assert speed.count() == speed.select("event_id").distinct().count() == silver.count()
    assert speed.join(silver, "event_id", "left_anti").count() == 0
    assert speed.where(F.col("score").isNull()).count() == 0
