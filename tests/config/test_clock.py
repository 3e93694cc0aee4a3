"""One clock for "what day is it": every date-sensitive path at several pinned todays.

The rest of the suite runs at the real date (or ``MEDALLION_TEST_TODAY``); here the same
data runs a year later, across a year end and across a month end (February into March),
through datagen's window, ingest, the features' point-in-time cut, the stream, the night's
default date and reconcile's speed retention.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from medallion.clock import Clock
from tests.conftest import TODAY


def test_a_pinned_clock_is_that_day_and_the_real_one_follows_utc():
    pinned = Clock(date(2031, 1, 1))
    assert pinned.today() == date(2031, 1, 1)
    assert pinned.yesterday() == date(2030, 12, 31)
    assert pinned.now().date() == date(2031, 1, 1) and pinned.now().tzinfo is not None
    real = Clock()
    assert real.today() in (
        datetime.now().astimezone().date(),
        (datetime.now().astimezone() - timedelta(days=1)).date(),
        (datetime.now().astimezone() + timedelta(days=1)).date(),
    )
    with pytest.raises(TypeError, match=r"datetime\.date"):
        Clock("2031-01-01")  # type: ignore[arg-type]


def test_settings_cli_and_environment_pin_the_same_clock(settings):
    from medallion.config import load_settings
    from tests.conftest import REPO

    assert Clock.from_settings(settings).today() == TODAY
    from_env = load_settings(environ={"MEDALLION__CLOCK__TODAY": "2032-02-29"}, directory=REPO / "conf")
    assert Clock.from_settings(from_env).yesterday() == date(2032, 2, 28)
    unpinned = load_settings(environ={}, directory=REPO / "conf")
    assert unpinned.clock.today is None


def test_a_bad_today_is_one_line(tmp_path, capsys):
    from medallion.cli import main

    assert main(["batch", "--today", "2026-13-01", "--set", f"storage.root={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: clock.today: '2026-13-01' is invalid") and "\n" not in err


YEAR_LATER = TODAY + timedelta(days=365)
NEW_YEAR = date(TODAY.year + 1, 1, 1)
MARCH_FIRST = date(TODAY.year + 1, 3, 1)


@pytest.mark.parametrize(
    "today", [YEAR_LATER, NEW_YEAR, MARCH_FIRST], ids=["year-later", "new-year", "march-1"]
)
def test_every_date_sensitive_path_follows_the_pinned_day(today, spark, lake_with_champion, capsys):
    from medallion.cli import main
    from medallion.datagen import generate_history
    from medallion.streaming.speed import SpeedLayer
    from medallion.tables import Lakehouse

    yesterday, before = today - timedelta(days=1), today - timedelta(days=2)
    settings = lake_with_champion(
        f"clock.today={today}",
        "datagen.late_fraction=0",
        "datagen.files_per_day=2",
        "stream.trigger.kind=availableNow",
    )
    conf = ["--set", f"storage.root={settings.storage.root}"]
    conf += ["--set", f"storage.tracking_uri={settings.storage.mlflow_tracking_uri}"]

    # datagen: the history ends on the clock's yesterday.
    generate_history(settings, days=2, events_per_day=150, progress=False)
    days = {p.name.split("-")[1] for p in Path(settings.storage.landing_events).glob("events-*.jsonl")}
    assert days == {f"{before:%Y%m%d}", f"{yesterday:%Y%m%d}"}

    # The stream ingests and scores everything that landed; the night scores the clock's yesterday.
    SpeedLayer(settings, spark, log=lambda _: None).run(timeout=180)
    capsys.readouterr()
    assert main(["batch", "--today", str(today), "--no-ingest", *conf]) == 0
    assert f"{yesterday}" in capsys.readouterr().out

    lake = Lakehouse(settings, spark)
    silver = lake.table("silver", "events").read()
    scored = lake.table("gold", "predictions_batch").read()
    assert [r.event_date for r in scored.select("event_date").distinct().collect()] == [yesterday]
    assert scored.count() == silver.where(F.col("event_date") == yesterday).count() > 100

    # Features' point-in-time cut: yesterday's profiles count exactly the events before it.
    profiles = lake.table("gold", "card_profiles").read().where(F.col("profile_date") == yesterday)
    counted = profiles.agg(F.sum("txn_count_30d")).first()[0]
    assert counted == silver.where(F.col("event_date") < yesterday).count() > 100

    # Reconcile's retention counts from the clock: kept the morning after, compacted past it.
    speed_of_day = lake.table("gold", "predictions_speed").read().where(F.col("event_date") == yesterday)
    superseded = speed_of_day.join(scored, "event_id", "left_semi").count()
    assert superseded > 100
    assert main(["reconcile", "--today", str(today), *conf]) == 0
    assert "compacted gold.predictions_speed: 0 superseded rows" in capsys.readouterr().out
    retention = settings.reconcile.speed_retention_days
    later = str(yesterday + timedelta(days=retention + 1))
    assert main(["reconcile", "--today", later, "--date", str(yesterday), *conf]) == 0
    assert f"compacted gold.predictions_speed: {superseded} superseded rows" in capsys.readouterr().out
    # The day before yesterday was never reconciled: its speed rows serve it and stay.
    assert lake.table("gold", "predictions_speed").read().where(F.col("event_date") == before).count() > 100
