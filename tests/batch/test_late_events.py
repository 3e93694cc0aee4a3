"""Events that arrive after their night are scored by the next night, whoever ingested them."""

from __future__ import annotations

import json
from datetime import timedelta

from pyspark.sql import functions as F

from medallion.batch import NightlyBatch
from medallion.datagen import generate_history
from medallion.tables import Lakehouse
from tests.conftest import HISTORY_END
from tests.ingest.test_ingest import event, land


def test_a_late_event_gets_a_batch_score_the_next_night(spark, lake_with_champion):
    day = HISTORY_END
    settings = lake_with_champion("datagen.late_fraction=0", "datagen.files_per_day=2")
    generate_history(settings, days=2, events_per_day=60, end_date=day, progress=False)
    night = NightlyBatch(settings, spark)
    before = night.run(day - timedelta(days=1))
    assert before.scored > 0 and before.late == []

    late_ts = f"{(day - timedelta(days=1)).isoformat()}T23:59:30Z"
    land(
        settings.storage.landing_events,
        "events-late.jsonl",
        [json.dumps(event("late-1", event_ts=late_ts)), json.dumps(event("late-2", event_ts=late_ts))],
    )
    report = night.run(day)
    assert [r.day for r in report.late] == [day - timedelta(days=1)]

    lake = Lakehouse(settings, spark)
    yesterday = F.col("event_date") == F.lit(day - timedelta(days=1))
    events = {r.event_id for r in lake.table("silver", "events").read().where(yesterday).collect()}
    scored = {r.event_id for r in lake.table("gold", "predictions_batch").read().where(yesterday).collect()}
    assert {"late-1", "late-2"} <= events == scored
    # The night after finds nothing late: each night is scored once per arrival.
    assert night.run(day).late == []
