"""The speed layer: streaming scoring over landed files, each trigger kind, stream == batch."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from pyspark.sql import functions as F

from bench._lib.common import register_champion_copy
from medallion.datagen import generate_history
from medallion.errors import StreamConfigError
from medallion.serving.stores import open_store
from medallion.streaming.speed import SpeedLayer
from medallion.tables import Lakehouse
from tests.conftest import HISTORY_END

DAY = HISTORY_END


def landed_lines(settings) -> int:
    return sum(
        len(path.read_text().splitlines()) for path in Path(settings.storage.landing_events).glob("*.jsonl")
    )


@pytest.mark.heavy
@pytest.mark.usefixtures("delta_engine")
def test_available_now_scores_every_landed_event_once(spark, lake_with_champion):
    settings = lake_with_champion(
        "stream.trigger.kind=availableNow", "stream.max_files_per_trigger=3", "stream.compact_every=2"
    )
    generate_history(settings, days=1, events_per_day=300, end_date=DAY, progress=False)
    lines: list[str] = []
    SpeedLayer(settings, spark, log=lines.append).run(timeout=180)

    lake = Lakehouse(settings, spark)
    # A batch appends a file to each table; every second batch compacts them (no row changes).
    batches = [line for line in lines if line.startswith("[stream] batch ")]
    assert any(line.startswith("[stream] compacted ") for line in lines)
    assert len(lake.table("bronze", "events").read().inputFiles()) < len(batches)
    assert lake.table("bronze", "events").read().count() == landed_lines(settings)
    silver = lake.table("silver", "events").read()
    speed_rows = lake.table("gold", "predictions_speed").read()
    assert silver.count() > 250
    assert speed_rows.count() == speed_rows.select("event_id").distinct().count() == silver.count()
    assert speed_rows.join(silver, "event_id", "left_anti").count() == 0
    assert speed_rows.where(F.col("score").isNull() | F.col("landed_at").isNull()).count() == 0
    assert {r.variant for r in speed_rows.select("variant").distinct().collect()} == {"champion"}
    serving = lake.table("gold", "predictions").read()
    assert serving.count() == silver.count()
    assert {r.source for r in serving.select("source").distinct().collect()} == {"speed"}
    # Each serving row is in the online store too (serving.stream_writes), as the API answers it.
    store = open_store(settings)
    for served in serving.limit(20).collect():
        online = store.serving_row(served.event_id)
        assert online is not None and online["score"] == served.score, served.event_id
        assert online["source"] == "speed" and online["event_date"] == served.event_date.isoformat()

    metrics = lake.table("gold", "stream_metrics").read().orderBy("batch_id").collect()
    assert len(metrics) == len(batches) >= 4  # 12 files, at most 3 per trigger
    assert sum(m.input_rows for m in metrics) == landed_lines(settings)
    assert sum(m.quarantined for m in metrics) == lake.table("silver", "quarantine").read().count()
    assert all(m.latency_p95_ms >= m.latency_p50_ms >= 0 and m.model_version == "1" for m in metrics)


def test_processing_time_scores_new_files_and_switches_model_on_promotion(spark, lake_with_champion):
    settings = lake_with_champion(
        "stream.trigger.kind=processingTime", "stream.trigger.interval=1 second", "datagen.files_per_day=2"
    )
    lines: list[str] = []
    speed = SpeedLayer(settings, spark, log=lines.append)
    query = speed.start()
    try:
        generate_history(settings, days=1, events_per_day=120, end_date=DAY, progress=False)
        query.processAllAvailable()
        promoted = register_champion_copy(settings, "champion")
        generate_history(
            settings, days=1, events_per_day=120, end_date=DAY + timedelta(days=1), progress=False
        )
        query.processAllAvailable()
    finally:
        query.stop()
        speed.stopped()

    speed_rows = Lakehouse(settings, spark).table("gold", "predictions_speed").read()
    versions = {
        (r.day, r.model_version)
        for r in speed_rows.select(F.substring("event_id", 5, 8).alias("day"), "model_version")
        .distinct()
        .collect()
    }
    next_day = DAY + timedelta(days=1)
    assert versions == {(f"{DAY:%Y%m%d}", "1"), (f"{next_day:%Y%m%d}", promoted)}
    assert speed_rows.count() == speed_rows.select("event_id").distinct().count()
    assert any(f"champion is fraud_model v{promoted}" in line for line in lines)


def test_stream_scores_equal_batch_scores(spark, lake_with_champion):
    """The same events and model give the same score in the speed and the batch layer."""
    from medallion.batch import NightlyBatch
    from medallion.features import FeatureStore
    from medallion.ingest import Ingestor

    settings = lake_with_champion("stream.trigger.kind=availableNow", "datagen.late_fraction=0")
    generate_history(settings, days=3, events_per_day=300, end_date=DAY - timedelta(days=1), progress=False)
    Ingestor(settings, spark).run_batch()
    FeatureStore(settings, spark).build(DAY - timedelta(days=1))  # profiles for DAY, as a night leaves them
    generate_history(settings, days=1, events_per_day=300, end_date=DAY, seed=7, progress=False)
    SpeedLayer(settings, spark, log=lambda _: None).run(timeout=180)
    NightlyBatch(settings, spark).run(DAY, ingest=False, reconcile=False)

    lake = Lakehouse(settings, spark)
    speed = lake.table("gold", "predictions_speed").read().select("event_id", F.col("score").alias("speed"))
    batch = lake.table("gold", "predictions_batch").read().where(F.col("event_date") == DAY)
    both = batch.select("event_id", F.col("score").alias("batch")).join(speed, "event_id").toPandas()
    assert len(both) == batch.count() > 250
    np.testing.assert_allclose(both["speed"], both["batch"], atol=1e-9)


@pytest.mark.parametrize("scoring", ["pandas_udf", "native"])
def test_continuous_trigger_scores_rate_rows_into_memory(spark, lake_with_champion, scoring):
    settings = lake_with_champion(
        f"model.scoring={scoring}",
        "stream.source=rate",
        "stream.sink=memory",
        "stream.trigger.kind=continuous",
        "stream.trigger.interval=1 second",
        "stream.query_name=continuous_scores",
        "stream.rate.rows_per_second=20",
    )
    lines: list[str] = []
    speed = SpeedLayer(settings, spark, log=lines.append)
    query = speed.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and spark.table("continuous_scores").count() < 20:
            time.sleep(1)
    finally:
        query.stop()
    scored = spark.table("continuous_scores")
    assert scored.count() >= 20
    assert scored.where(F.col("score").isNull() | ~F.col("score").between(0, 1)).count() == 0
    assert {r.model_version for r in scored.select("model_version").distinct().collect()} == {"1"}
    assert {r.scored_by for r in scored.select("scored_by").distinct().collect()} == {scoring}
    assert any("continuous mode" in line for line in lines)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["stream.trigger.kind=continuous", "stream.trigger.interval=1 second"],
            "continuous cannot read stream.source=files",
        ),
        (
            ["stream.trigger.kind=continuous", "stream.source=rate", "stream.trigger.interval=1 second"],
            "continuous cannot write stream.sink=delta",
        ),
        (["stream.sink=kafka"], "processingTime writes the lakehouse's Delta tables, not stream.sink=kafka"),
        (
            ["stream.trigger.kind=availableNow", "stream.source=rate", "stream.sink=memory"],
            "availableNow writes the lakehouse's Delta tables, not stream.sink=memory",
        ),
        (["stream.source=kafka", "stream.kafka.topic=events"], "needs stream.kafka.bootstrap_servers"),
        (
            ["stream.source=kafka", "stream.kafka.topic=events", "stream.kafka.bootstrap_servers=k:9092"],
            "no Kafka broker answered at k:9092",
        ),
    ],
)
def test_rejected_combinations_end_before_start_in_one_line(spark, settings, overrides, message):
    from medallion.config import load_settings
    from tests.conftest import REPO

    bad = load_settings(
        environ={},
        directory=REPO / "conf",
        overrides=[f"storage.root={settings.storage.root}", *overrides],
    )
    with pytest.raises(StreamConfigError, match=message) as err:
        SpeedLayer(bad, spark)
    assert "\n" not in str(err.value)
    assert not spark.streams.active


def test_continuous_rate_partitions_may_not_hold_every_core(spark, settings):
    # Continuous tasks never end: on local[2] two of them would starve every other job.
    # spark.default.parallelism (4 here) is not the number of cores.
    from medallion.config import load_settings
    from tests.conftest import REPO

    held = load_settings(
        environ={},
        directory=REPO / "conf",
        overrides=[
            f"storage.root={settings.storage.root}",
            "stream.trigger.kind=continuous",
            "stream.trigger.interval=1 second",
            "stream.source=rate",
            "stream.sink=memory",
            "stream.rate.partitions=2",
        ],
    )
    with pytest.raises(StreamConfigError, match=r"stream.rate.partitions=2 would hold all 2 cores"):
        SpeedLayer(held, spark, log=lambda _: None)
    assert not spark.streams.active


@pytest.mark.parametrize("mode", ["shadow", "canary"])
def test_challenger_in_the_stream_shadow_never_served_canary_served_for_its_cards(
    spark, lake_with_champion, mode
):
    settings = lake_with_champion(
        "stream.trigger.kind=availableNow",
        f"stream.challenger={mode}",
        "stream.canary_fraction=0.5",
        "datagen.files_per_day=2",
    )
    challenger = register_champion_copy(settings, "challenger")
    generate_history(settings, days=1, events_per_day=150, end_date=DAY, progress=False)
    SpeedLayer(settings, spark, log=lambda _: None).run(timeout=180)

    lake = Lakehouse(settings, spark)
    silver = lake.table("silver", "events").read()
    speed = lake.table("gold", "predictions_speed").read()
    serving = lake.table("gold", "predictions").read()
    by_variant = {
        r.variant: (r.model_version, r["count"])
        for r in speed.groupBy("variant", "model_version").count().collect()
    }
    if mode == "shadow":
        shadow = lake.table("gold", "predictions_shadow").read()
        assert shadow.count() == silver.count()
        assert {r.model_version for r in shadow.select("model_version").distinct().collect()} == {challenger}
        assert by_variant == {"champion": ("1", silver.count())}
        assert serving.where(F.col("model_version") == challenger).count() == 0
    else:
        from medallion.streaming.predictions import canary_cards

        on_canary = silver.where(canary_cards(F.col("card_id"), 0.5)).count()
        assert 0 < on_canary < silver.count()
        assert by_variant == {
            "champion": ("1", silver.count() - on_canary),
            "challenger": (challenger, on_canary),
        }
        assert serving.where(F.col("model_version") == challenger).count() == on_canary
        assert (
            not lake.exists("gold", "predictions_shadow")
            or lake.table("gold", "predictions_shadow").read().count() == 0
        )


def test_an_online_store_that_is_away_stops_no_batch(spark, settings):
    """The online store is a copy of gold.predictions: a Redis that is down costs a batch one
    line, and the next batches do not wait on it again for a while."""
    import pyarrow as pa

    from medallion.kafka.broker import free_port

    serving = settings.serving.model_copy(
        update={"store": "redis", "redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    )
    lines: list[str] = []
    speed = SpeedLayer(settings.model_copy(update={"serving": serving}), spark, log=lines.append)
    rows = pa.table({"event_id": ["e1"], "score": [0.5], "source": ["speed"]})
    speed._to_online_store(rows)
    speed._to_online_store(rows)
    speed.stopped()  # the copy is written beside the batches: wait for it
    away = [line for line in lines if "online store not updated" in line]
    assert len(away) == 1 and "redis-server" in away[0], lines
