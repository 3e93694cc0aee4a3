"""The speed layer on a real Kafka broker (KRaft on loopback): records in, bronze keeps their
coordinates, bad records to quarantine, exactly-once into Delta across kill -9, and the
one-line errors of an unreachable broker or a missing topic."""

from __future__ import annotations

import json
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
from medallion.model.native.parity import PARITY_TOLERANCE
from medallion.silver import parse_events
from medallion.streaming.landing import start_ingest
from medallion.streaming.speed import SpeedLayer
from medallion.tables import Lakehouse
from tests.conftest import REPO
from tests.streaming.test_speed_recovery import wait_for_batches

pytestmark = pytest.mark.slow


def kafka_conf(broker, topic: str, *extra: str) -> list[str]:
    return [
        "stream.source=kafka",
        f"stream.kafka.bootstrap_servers={broker.bootstrap}",
        f"stream.kafka.topic={topic}",
        *extra,
    ]


def produced_history(settings, per_day: int = 200, seed: int | None = None) -> int:
    """One day of generated events (malformed and re-sent ones included) produced to the topic."""
    summary = generate_history(
        settings, days=1, events_per_day=per_day, seed=seed, progress=False, to="kafka"
    )
    return summary.events + summary.duplicates + sum(summary.malformed.values())


def consumed_count(broker, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": "count", "enable.auto.commit": False}
    )
    total = 0
    for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        total += high - low
    consumer.close()
    return total


def assert_exactly_once(spark, settings, records: int) -> None:
    lake = Lakehouse(settings, spark)
    bronze = lake.table("bronze", "events").read()
    silver = lake.table("silver", "events").read()
    quarantine = lake.table("silver", "quarantine").read()
    speed = lake.table("gold", "predictions_speed").read()
    assert bronze.count() == records
    # Each record once: its (partition, offset) appears in bronze exactly once.
    assert bronze.select("kafka_partition", "kafka_offset").distinct().count() == records
    assert bronze.where(F.col("kafka_topic").isNull() | F.col("kafka_timestamp").isNull()).count() == 0
    assert silver.count() == silver.select("event_id").distinct().count()
    parsed = parse_events(bronze)
    assert silver.count() == parsed.valid.select("event_id").distinct().count() > 100
    assert quarantine.count() == parsed.quarantine.count() > 0
    assert speed.count() == speed.select("event_id").distinct().count() == silver.count()
    assert speed.join(silver, "event_id", "left_anti").count() == 0


@pytest.mark.parametrize("trigger", ["availableNow", "processingTime"])
def test_a_kafka_source_feeds_the_speed_layer_under_each_micro_batch_trigger(
    trigger, spark, lake_with_champion, kafka_broker, kafka_topic
):
    settings = lake_with_champion(
        *kafka_conf(
            kafka_broker, kafka_topic, f"stream.trigger.kind={trigger}", "stream.trigger.interval=1 second"
        ),
        "stream.kafka.max_offsets_per_trigger=150",
    )
    records = produced_history(settings)
    assert consumed_count(kafka_broker, kafka_topic) == records
    lines: list[str] = []
    speed = SpeedLayer(settings, spark, log=lines.append)
    if trigger == "availableNow":
        speed.run(timeout=240)
    else:
        query = speed.start()
        try:
            query.processAllAvailable()
        finally:
            query.stop()
            speed.stopped()
    assert any("kafka -> delta" in line for line in lines), lines
    assert_exactly_once(spark, settings, records)
    # A record's latency runs from when it was produced: its Kafka timestamp is its landing time.
    lake = Lakehouse(settings, spark)
    speed_rows = lake.table("gold", "predictions_speed").read()
    produced = (
        parse_events(lake.table("bronze", "events").read())
        .valid.select("event_id", F.col("kafka_timestamp").alias("produced"))
        .dropDuplicates(["event_id"])
    )
    timed = speed_rows.join(produced, "event_id")
    assert timed.count() == speed_rows.count()
    assert timed.where(F.col("landed_at").isNull() | (F.col("landed_at") != F.col("produced"))).count() == 0
    assert any("latency p50 -" not in line for line in lines if "latency" in line), lines
    # The files source was not read: nothing landed, and bronze names Kafka partitions only.
    assert not list(Path(settings.storage.landing_events).glob("*.jsonl"))
    sources = {r.source_file for r in Lakehouse(settings, spark).table("bronze", "events").read().collect()}
    assert sources <= {f"kafka://{kafka_topic}/0", f"kafka://{kafka_topic}/1"}


def test_ingest_mode_stream_reads_kafka_events(spark, lake_with_champion, kafka_broker, kafka_topic):
    from medallion.ingest import Ingestor

    settings = lake_with_champion(*kafka_conf(kafka_broker, kafka_topic, "stream.trigger.kind=availableNow"))
    records = produced_history(settings)
    for query in start_ingest(Ingestor(settings, spark), {"availableNow": True}):
        query.awaitTermination(240)
    lake = Lakehouse(settings, spark)
    bronze = lake.table("bronze", "events").read()
    assert bronze.count() == records
    parsed = parse_events(bronze)
    assert lake.table("silver", "events").read().count() == parsed.valid.select("event_id").distinct().count()
    assert (
        lake.table("silver", "quarantine").read().where("feed = 'events'").count()
        == parsed.quarantine.count()
    )
    # Labels still land as files: the labels query read them.
    assert lake.table("bronze", "labels").read().count() > 0


def test_datagen_follow_to_kafka_produces_the_landing_lines(kafka_broker, kafka_topic, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDALLION")}
    result = subprocess.run(
        [sys.executable, "-m", "medallion.cli", "datagen", "--follow", "--to", "kafka", "--rate", "40",
         "--duration", "3", "--set", f"storage.root={tmp_path}",
         *[f"--set={c}" for c in kafka_conf(kafka_broker, kafka_topic)]],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    produced = consumed_count(kafka_broker, kafka_topic)
    assert produced >= 40
    assert (
        not list((tmp_path / "landing" / "events").glob("*.jsonl"))
        if (tmp_path / "landing").exists()
        else True
    )
    from confluent_kafka import Consumer

    consumer = Consumer(
        {"bootstrap.servers": kafka_broker.bootstrap, "group.id": "read", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([kafka_topic])
    values = []
    deadline = time.monotonic() + 30
    while len(values) < produced and time.monotonic() < deadline:
        message = consumer.poll(1)
        if message is not None and message.error() is None:
            values.append(message.value().decode())
    consumer.close()
    events = [json.loads(v) for v in values if v.startswith("{") and '"event_id"' in v]
    assert len(events) > 30 and all("card_id" in e or "event_id" in e for e in events)


def _stream_command(settings, trigger: str) -> list[str]:
    command = [sys.executable, "-m", "medallion.cli", "stream"]
    for item in [
        f"storage.root={settings.storage.root}",
        f"storage.tracking_uri={settings.storage.mlflow_tracking_uri}",
        f"stream.trigger.kind={trigger}",
        "stream.trigger.interval=1 second",
        "stream.source=kafka",
        f"stream.kafka.bootstrap_servers={settings.stream.kafka.bootstrap_servers}",
        f"stream.kafka.topic={settings.stream.kafka.topic}",
        "stream.kafka.max_offsets_per_trigger=60",
    ]:
        command += ["--set", item]
    return command


@pytest.mark.heavy
def test_kill_9_mid_stream_loses_and_duplicates_no_kafka_record(
    spark, lake_with_champion, kafka_broker, kafka_topic, tmp_path
):
    settings = lake_with_champion(*kafka_conf(kafka_broker, kafka_topic))
    records = produced_history(settings, per_day=240)
    log = tmp_path / "stream.log"
    env = {**os.environ, "MEDALLION_ENV": "local", "COLUMNS": "200"}
    rng = random.Random(5)
    # A crash at a random point of a batch after the first committed one, then a restart that
    # drains (the soak, tests/streaming/test_soak.py, kills again and again).
    with log.open("ab") as handle:
        process = subprocess.Popen(
            _stream_command(settings, "processingTime"), stdout=handle, stderr=subprocess.STDOUT, env=env
        )
    wait_for_batches(log, 1, process)
    time.sleep(rng.uniform(0.0, 2.0))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    with log.open("ab") as handle:
        drained = subprocess.run(
            _stream_command(settings, "availableNow"),
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=400,
        )
    assert drained.returncode == 0, log.read_text(errors="replace")[-3000:]
    assert_exactly_once(spark, settings, records)


def test_an_unreachable_broker_and_a_missing_topic_are_one_line(kafka_broker, tmp_path):
    from medallion.kafka.broker import free_port

    def stream(*conf: str) -> subprocess.CompletedProcess:
        args = [sys.executable, "-m", "medallion.cli", "stream", "--set", f"storage.root={tmp_path}"]
        for item in ["stream.source=kafka", "stream.trigger.kind=availableNow", *conf]:
            args += ["--set", item]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDALLION")}
        return subprocess.run(args, capture_output=True, text=True, cwd=REPO, env=env, timeout=180)

    nobody = stream(f"stream.kafka.bootstrap_servers=127.0.0.1:{free_port()}", "stream.kafka.topic=events")
    assert nobody.returncode == 2
    err = nobody.stderr.strip().splitlines()
    assert (
        err[-1].startswith("error: stream.kafka.bootstrap_servers=127.0.0.1:") and "make kafka-up" in err[-1]
    )
    assert "Traceback" not in nobody.stderr and "Py4J" not in nobody.stderr
    # librdkafka's own per-retry lines ("%3|...|FAIL|rdkafka#producer-1| ... Connection refused")
    # would bury the one line, before it and after it.
    assert not [line for line in err if "rdkafka" in line], nobody.stderr[-2000:]

    missing = stream(
        f"stream.kafka.bootstrap_servers={kafka_broker.bootstrap}", "stream.kafka.topic=no-such-topic"
    )
    assert missing.returncode == 2
    assert (
        missing.stderr.strip()
        .splitlines()[-1]
        .startswith("error: Kafka topic 'no-such-topic' does not exist")
    )


def test_kafka_secrets_are_redacted_in_config_show(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDALLION")}
    env["MEDALLION__STREAM__KAFKA__OPTIONS__SASL.PASSWORD"] = "hunter2"
    for extra in ([], ["--explain"]):
        shown = subprocess.run(
            [sys.executable, "-m", "medallion.cli", "config", "show", *extra,
             "--set", "stream.kafka.options.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required password=s3cret;",
             "--set", "stream.kafka.options.security.protocol=SASL_SSL"],
            capture_output=True, text=True, cwd=REPO, env={**env, "COLUMNS": "300"}, timeout=60,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert "s3cret" not in shown.stdout and "hunter2" not in shown.stdout
        assert "SASL_SSL" in shown.stdout and "***" in shown.stdout


def readme_kafka_blocks() -> list[list[str]]:
    import re

    readme = (REPO / "README.md").read_text()
    section = re.search(r"\n## Kafka\n(.*?)\n## ", readme, re.S).group(1)
    return [
        [line for line in block.splitlines() if line.strip()]
        for block in re.findall(r"```bash\n(.*?)```", section, re.S)
    ]


def topic_values(bootstrap: str, topic: str) -> list[str]:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"readme-{topic}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    records, idle_since = [], time.monotonic()
    while time.monotonic() - idle_since < 5:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            records.append(message.value().decode())
            idle_since = time.monotonic()
    consumer.close()
    return records


def test_the_readme_has_a_micro_batch_and_a_continuous_kafka_block():
    blocks = readme_kafka_blocks()
    assert [any("stream.trigger.kind=continuous" in line for line in block) for block in blocks] == [
        False,
        True,
    ]


@pytest.mark.heavy
@pytest.mark.parametrize("block", [0, 1], ids=["micro-batch", "continuous"])
def test_the_readme_kafka_commands_run_as_written(lake_with_champion, block):
    """Each README Kafka block, line by line in a shell, on a free port and this test's lakehouse;
    before its make kafka-down, what the stream wrote is read back."""
    from medallion.kafka.broker import free_port

    settings = lake_with_champion()
    commands = readme_kafka_blocks()[block]
    assert commands[0].startswith("make kafka-up") and commands[-1] == "make kafka-down"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDALLION")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        MEDALLION__STORAGE__ROOT=str(settings.storage.root),
        MEDALLION__STORAGE__TRACKING_URI=settings.storage.mlflow_tracking_uri,
        MEDALLION__STREAM__KAFKA__LOCAL_PORT=str(port),
        COLUMNS="200",
    )

    def run(command: str) -> None:
        done = subprocess.run(
            command.replace("127.0.0.1:9092", f"127.0.0.1:{port}"),
            shell=True, cwd=REPO, env=env, capture_output=True, text=True, timeout=400,
        )  # fmt: skip
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        # Stopping the query (its --timeout here, SIGTERM in production) is no error: no JVM
        # trace of the tasks it interrupts.
        traced = [line for line in done.stderr.splitlines() if " ERROR " in line or line.startswith("\tat ")]
        assert not traced, f"{command}\n{done.stderr[-3000:]}"

    bad_lines = ['{"event_id": "bad-1", "amount": "12"}', "not json", '{"event_id": "bad-2", "amount": -1}']
    try:
        for command in commands[:-1]:
            if block == 1 and command.startswith("medallion stream"):
                # Records the drip may not hold: the stream must route each to the quarantine topic.
                from medallion.kafka.client import produce_lines

                produce_lines(f"127.0.0.1:{port}", "events", bad_lines)
            run(command)
        if block == 1:
            bootstrap = f"127.0.0.1:{port}"
            landed = topic_values(bootstrap, "events")
            scores = [json.loads(value) for value in topic_values(bootstrap, "scores")]
            rejected = [json.loads(value) for value in topic_values(bootstrap, "scores.quarantine")]
            # README: "run the stream above with stream.trigger.kind=realTime and
            # model.scoring=native". Its own query name (checkpoint) and scores topics, so the
            # same records are scored again from the start, and stopped by its --timeout.
            from medallion.kafka.client import create_topic

            for topic in ("scores.rt", "scores.rt.quarantine"):
                create_topic(bootstrap, topic)
            stream = next(command for command in commands if command.startswith("medallion stream"))
            assert "stream.trigger.kind=continuous" in stream
            run(
                stream.replace("stream.trigger.kind=continuous", "stream.trigger.kind=realTime")
                .replace("scores_topic=scores ", "scores_topic=scores.rt ")
                .replace("quarantine_topic=scores.quarantine", "quarantine_topic=scores.rt.quarantine")
                + " --set model.scoring=native --set stream.query_name=readme_real_time"
            )
            real_time = [json.loads(value) for value in topic_values(bootstrap, "scores.rt")]
            real_time_rejected = [json.loads(v) for v in topic_values(bootstrap, "scores.rt.quarantine")]
        run(commands[-1])
    finally:
        subprocess.run("make kafka-down", shell=True, cwd=REPO, env=env, capture_output=True, timeout=120)
    assert not (settings.storage.root_path / "kafka" / "broker.pid").exists()
    if block == 0:
        from deltalake import DeltaTable

        bronze = DeltaTable(settings.storage.table_path("bronze", "events")).to_pyarrow_table()
        speed = DeltaTable(settings.storage.table_path("gold", "predictions_speed")).to_pyarrow_table()
        assert bronze.num_rows >= 100 and set(bronze.column("kafka_topic").to_pylist()) == {"events"}
        assert speed.num_rows > 50
        return
    # Every record the drip produced left the continuous query once: scored, or rejected.
    assert len(scores) > 50
    assert all(0.0 <= record["score"] <= 1.0 and record["model_version"] for record in scores)
    assert {record["raw"] for record in rejected} >= set(bad_lines)
    assert {record["feed"] for record in rejected} == {"events"}
    assert all(record["reasons"] and record["raw"] is not None for record in rejected)
    assert len(scores) + len(rejected) == len([value for value in landed if value.strip()])
    # realTime scored the same records (native scoring equals the pyfunc within float error).
    assert {r["event_id"] for r in real_time} == {r["event_id"] for r in scores}
    by_id = {r["event_id"]: r["score"] for r in scores}
    assert max(abs(r["score"] - by_id[r["event_id"]]) for r in real_time) <= PARITY_TOLERANCE
    assert {record["raw"] for record in real_time_rejected} == {record["raw"] for record in rejected}


@pytest.mark.heavy
@pytest.mark.parametrize(("kind", "interval"), [("realTime", "5 seconds"), ("continuous", "1 second")])
def test_compiled_scoring_kafka_to_kafka_equals_the_pyfunc(
    spark, lake_with_champion, kafka_broker, kafka_topic, kind, interval
):
    """Kafka in, Kafka out, the champion compiled: realTime (all in the JVM: the profile join
    against a snapshot of gold.card_profiles) and continuous (the map-only profile lookup).
    Every record leaves, scored or rejected, and each score is the pyfunc's on the features the
    night computes. When the night writes new card profiles, the running query restarts on them
    from its checkpoint: the records produced after score on the new profiles."""
    import threading
    from datetime import UTC, datetime, timedelta

    from medallion.features import FeatureStore, build_features
    from medallion.ingest import Ingestor
    from medallion.model.scoring import load_champion
    from medallion.predict import with_scores
    from tests.conftest import HISTORY_END

    scores_topic, rejected_topic = f"{kafka_topic}.scores", f"{kafka_topic}.rejected"
    kafka_broker.create_topic(scores_topic, partitions=2)
    kafka_broker.create_topic(rejected_topic, partitions=1)
    if kind == "continuous":
        # A continuous task holds a core per input partition: one, on local[2].
        kafka_topic = f"{kafka_topic}.in"
        kafka_broker.create_topic(kafka_topic, partitions=1)
    settings = lake_with_champion(
        *kafka_conf(
            kafka_broker,
            kafka_topic,
            f"stream.trigger.kind={kind}",
            f"stream.trigger.interval={interval}",
            "stream.sink=kafka",
            f"stream.kafka.scores_topic={scores_topic}",
            f"stream.kafka.quarantine_topic={rejected_topic}",
            "stream.refresh_seconds=2",
            "model.scoring=native",
        )
    )
    # Card profiles for the live day, from three days of history through the night's path.
    generate_history(
        settings, days=3, events_per_day=200, end_date=HISTORY_END - timedelta(days=1), progress=False
    )
    Ingestor(settings, spark).run_batch()
    FeatureStore(settings, spark).build(HISTORY_END - timedelta(days=1))
    lake = Lakehouse(settings, spark)
    profiles_table = lake.table("gold", "card_profiles")
    old_profiles = profiles_table.read().localCheckpoint()

    def kafka_lines():
        return (
            spark.read.format("kafka")
            .option("kafka.bootstrap.servers", kafka_broker.bootstrap)
            .option("subscribe", kafka_topic)
            .option("startingOffsets", "earliest")
            .load()
            .select(F.col("value").cast("string").alias("raw"), F.lit("kafka").alias("source_file"))
        )

    def left_to_score(records: int) -> int:
        return (
            records
            - consumed_count(kafka_broker, scores_topic)
            - consumed_count(kafka_broker, rejected_topic)
        )

    def wait_until(done, what: str, seconds: float = 240) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            assert time.monotonic() < deadline, f"{what}: {lines[-5:]}"
            assert runner.is_alive(), lines
            time.sleep(1)

    lines: list[str] = []
    speed = SpeedLayer(settings, spark, log=lines.append)
    runner = threading.Thread(target=speed.run, kwargs={"timeout": 600}, daemon=True)
    runner.start()
    try:
        first = produced_history(settings)
        first_lines = kafka_lines().localCheckpoint()
        wait_until(lambda: left_to_score(first) <= 0, "the first records were not all scored")
        # Past one interval the batch that scored them has committed, so the restart below
        # resumes after them (records of an uncommitted batch would be scored again).
        time.sleep(6)
        # The night writes new profiles: the live query must pick them up without a restart by hand.
        new_profiles = old_profiles.withColumn("amount_mean_30d", F.col("amount_mean_30d") * 4)
        profiles_table.overwrite(new_profiles)
        wait_until(lambda: any("restarting" in line for line in lines), "no restart on new profiles", 60)
        second_produced_from = datetime.now(UTC) - timedelta(milliseconds=1)
        second = produced_history(settings, seed=7)
        records = first + second
        wait_until(lambda: left_to_score(records) <= 0, "the second records were not all scored")
    finally:
        for query in spark.streams.active:
            if query.name == settings.stream.query_name:
                query.stop()
        runner.join(60)
    assert any(f"({'real-time' if kind == 'realTime' else kind})" in line for line in lines), lines
    assert any("scored by native" in line for line in lines), lines
    assert any("gold.card_profiles version" in line and "restarting" in line for line in lines), lines
    scores = [json.loads(value) for value in topic_values(kafka_broker.bootstrap, scores_topic)]
    rejected = [json.loads(value) for value in topic_values(kafka_broker.bootstrap, rejected_topic)]
    landed = kafka_lines()
    second_lines = landed.exceptAll(first_lines)
    assert landed.count() == records and second_lines.count() == second
    # The sink is at-least-once across the restart: each record leaves at least once.
    assert {record["feed"] for record in rejected} == {"events"} and len(scores) > 300

    # The same records the night's way: parsed, joined to the profiles each was meant to see,
    # scored by the pyfunc.
    pyfunc = settings.model_copy(
        update={"model": settings.model.model_copy(update={"scoring": "pandas_udf"})}
    )
    champion = load_champion(spark, pyfunc)

    def night(lines_, profiles) -> dict[str, tuple[float, bool]]:
        expected = with_scores(
            build_features(parse_events(lines_).valid, profiles), champion, settings.model.decision_threshold
        ).select("event_id", "score", "decision")
        return {row.event_id: (row.score, row.decision) for row in expected.collect()}

    before, after = night(first_lines, old_profiles), night(second_lines, new_profiles)
    assert not set(before) & set(after)
    assert {record["event_id"] for record in scores} == set(before) | set(after)
    for record in scores:
        score, decision = (after if record["event_id"] in after else before)[record["event_id"]]
        assert abs(record["score"] - score) <= 1e-9 and record["decision"] == decision
        # scored_at is read per row, not once per query or batch.
        if record["event_id"] in after:
            assert datetime.fromisoformat(record["scored_at"]) >= second_produced_from, record
    # The new profiles matter: on the old ones, some of the second records score otherwise.
    stale = night(second_lines, old_profiles)
    assert any(abs(stale[event_id][0] - after[event_id][0]) > 1e-6 for event_id in after)
