"""Kafka for benchmarks: a scratch broker, a datagen drip onto a topic, when each event was
produced, and a probe that paces records onto a topic and times their scores coming back.

Usage::

    with BenchBroker(workdir / "kafka") as broker:
        topic = broker.fresh_topic("events")
        drip_to_kafka(root, broker.bootstrap, topic, rate=1000, seconds=30).wait()
        produced = produced_times(spark, broker.bootstrap, topic)   # event_id, produced (epoch s)

        probe = Probe(broker.bootstrap, topic, [scores, rejected], lines, rate=1000, seconds=60, warmup=10)
        probe.start(); probe.wait(); probe.latencies_ms()          # measured records only

The probe runs in its own process (``python bench/_lib/kafka.py probe ...``) so that neither
the producer nor the consumer competes with the Spark driver for its GIL: it produces one
record per 1/rate seconds (not one burst a second, as ``datagen --follow`` does), each with a
unique event id, and consumes the scores topic from its start, recording per event the send
time, the receive time (both the probe's wall clock) and both records' Kafka timestamps.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script (the probe's process)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _lib.common import REPO


class BenchBroker:
    """A single-node KRaft broker on a free loopback port (medallion's LocalBroker), stopped on exit."""

    def __init__(self, directory: Path):
        from medallion.kafka.broker import LocalBroker, free_port

        self.broker = LocalBroker(directory, port=free_port())
        self._names = itertools.count(1)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def fresh_topic(self, prefix: str, partitions: int = 1) -> str:
        """A new topic (nothing any earlier run produced is in it)."""
        name = f"{prefix}-{next(self._names)}"
        self.broker.create_topic(name, partitions)
        return name

    def __enter__(self) -> BenchBroker:
        self.broker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.broker.stop()


def kafka_settings(bootstrap: str, topic: str, *extra: str) -> list[str]:
    """``--set`` overrides of a stream reading ``topic`` on ``bootstrap``."""
    return [
        "stream.source=kafka",
        f"stream.kafka.bootstrap_servers={bootstrap}",
        f"stream.kafka.topic={topic}",
        *extra,
    ]


def drip_to_kafka(root: Path, bootstrap: str, topic: str, rate: float, seconds: float) -> subprocess.Popen:
    """``medallion datagen --follow --to kafka``: about ``rate`` records a second onto ``topic``."""
    command = [sys.executable, "-m", "medallion.cli", "datagen", "--follow", "--to", "kafka"]
    command += ["--rate", str(rate), "--duration", str(seconds)]
    for item in (f"storage.root={root}", "datagen.cards=2000", *kafka_settings(bootstrap, topic)):
        command += ["--set", item]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)


def produced_times(spark, bootstrap: str, topic: str):
    """Each event id on ``topic`` with the Kafka timestamp (epoch s) of its first record."""
    from pyspark.sql import functions as F

    records = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
    )
    return (
        records.select(
            F.get_json_object(F.col("value").cast("string"), "$.event_id").alias("event_id"),
            F.col("timestamp").cast("double").alias("produced"),
        )
        .where(F.col("event_id").isNotNull())
        .groupBy("event_id")
        .agg(F.min("produced").alias("produced"))
    )


def sample_lines(settings, count: int) -> list[str]:
    """About ``count`` generated event lines (malformed and re-sent ones included), as datagen
    writes them to the landing zone of ``settings``' storage root."""
    from medallion.datagen import generate_history

    generate_history(settings, days=1, events_per_day=count, progress=False)
    folder = Path(settings.storage.landing_events)
    return [line for path in sorted(folder.glob("*.jsonl")) for line in path.read_text().splitlines() if line]


class Probe:
    """The probe process: paced records onto ``topic``, their outputs timed off ``out_topics``
    (the scores topic and the quarantine topic)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        out_topics: list[str],
        lines_file: Path,
        rate: float,
        seconds: float,
        warmup: float,
        result_file: Path,
        drain: float = 15.0,
    ):
        if rate <= 0 or seconds <= 0:
            raise ValueError("rate and seconds must be positive")
        self.result_file = result_file
        self.command = [
            sys.executable, str(Path(__file__).resolve()), "probe",
            "--bootstrap", bootstrap, "--topic", topic, "--scores-topic", ",".join(out_topics),
            "--lines", str(lines_file), "--rate", str(rate), "--seconds", str(seconds),
            "--warmup", str(warmup), "--drain", str(drain), "--result", str(result_file),
        ]  # fmt: skip
        self.process: subprocess.Popen | None = None

    def start(self) -> Probe:
        self.process = subprocess.Popen(self.command, cwd=REPO)
        return self

    def wait(self) -> dict:
        """Wait for the probe; its result: sent, received and the measured records' timings."""
        if self.process is None:
            raise ValueError("the probe was not started")
        if self.process.wait() != 0:
            raise RuntimeError(f"the Kafka probe exited with {self.process.returncode}")
        return json.loads(self.result_file.read_text())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def _restamped(line: str, event_id: str) -> str | None:
    """``line`` with a unique event id and event time now; None for a line that is no event."""
    from datetime import UTC, datetime

    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or "event_id" not in record:
        return None
    record["event_id"] = event_id
    record["event_ts"] = datetime.now(UTC).isoformat(timespec="milliseconds")
    return json.dumps(record)


def run_probe(args: argparse.Namespace) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    lines = Path(args.lines).read_text().splitlines()
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 0, "acks": 1})
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "bench-probe",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 5,
        }
    )
    # A record that leaves the query rejected (its event failed validation) comes back on the
    # quarantine topic, keyed by its event id as a score is.
    assigned = []
    for topic in args.scores_topic.split(","):
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        assigned += [TopicPartition(topic, p, 0) for p in partitions]  # from the start
    consumer.assign(assigned)

    sent: dict[str, list] = {}  # event id -> [sent s, input Kafka ms, received s, output Kafka ms]
    received: dict[str, tuple[float, int]] = {}
    stop_consuming = threading.Event()

    def consume() -> None:
        while not stop_consuming.is_set():
            message = consumer.poll(0.05)
            if message is None or message.error():
                continue
            now = time.time()
            key = message.key().decode() if message.key() else ""
            received.setdefault(key, (now, message.timestamp()[1]))

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()

    def delivered(err, message) -> None:
        if err is None and message.key():
            entry = sent.get(message.key().decode())
            if entry is not None:
                entry[1] = message.timestamp()[1]

    started = time.time()
    measured_from = started + args.warmup
    total = int(args.rate * (args.warmup + args.seconds))
    source = itertools.cycle(lines)
    produced = 0
    while produced < total:
        due = min(total, int((time.time() - started) * args.rate) + 1)
        while produced < due:
            event_id = f"probe-{produced:08d}"
            raw = next(source)
            line = _restamped(raw, event_id)
            now = time.time()
            if line is None:  # a malformed line goes too, unmeasured, as it would in production
                producer.produce(args.topic, value=raw.encode())
            else:
                producer.produce(args.topic, key=event_id, value=line.encode(), on_delivery=delivered)
                if now >= measured_from:
                    sent[event_id] = [now, None]
            produced += 1
        producer.poll(0)
        time.sleep(0.0005)
    producer.flush(30)
    deadline = time.time() + args.drain
    while time.time() < deadline and any(key not in received for key in sent):
        time.sleep(0.2)
    stop_consuming.set()
    reader.join(timeout=5)
    consumer.close()
    timings = [[sent_at, in_ms, *received[key]] for key, (sent_at, in_ms) in sent.items() if key in received]
    Path(args.result).write_text(
        json.dumps(
            {
                "produced": produced,
                "measured": len(sent),
                "received": len(timings),
                "came_back": len(received),
                "timings": timings,
            }
        )
    )


def summarise_probe(result: dict) -> dict[str, float]:
    """p50/p99 of send -> receive (probe clock) and input -> output Kafka timestamp, in ms."""
    import numpy as np

    timings = result["timings"]
    if not timings:
        return {"measured": result["measured"], "received": 0, "came_back": result["came_back"]}
    consumed = np.array([(received - sent) * 1000 for sent, _, received, _ in timings])
    stamped = np.array([out_ms - in_ms for _, in_ms, _, out_ms in timings if in_ms is not None])
    figures = {
        "measured": result["measured"],
        "received": result["received"],
        "came_back": result["came_back"],
        "p50_ms": float(np.percentile(consumed, 50)),
        "p99_ms": float(np.percentile(consumed, 99)),
    }
    if stamped.size:
        figures["kafka_ts_p50_ms"] = float(np.percentile(stamped, 50))
        figures["kafka_ts_p99_ms"] = float(np.percentile(stamped, 99))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description="the Kafka latency probe of bench/stream_latency.py")
    parser.add_argument("command", choices=["probe"])
    for name in ("--bootstrap", "--topic", "--scores-topic", "--lines", "--result"):
        parser.add_argument(name, required=True)
    for name in ("--rate", "--seconds", "--warmup", "--drain"):
        parser.add_argument(name, type=float, required=True)
    run_probe(parser.parse_args())


if __name__ == "__main__":
    main()
