"""Landing files and live drips: the world's events as lines, with the mess real feeds carry.

Malformed lines of every :data:`MALFORMED_KINDS`, re-sent duplicates, late events and late
chargeback labels are mixed in. Files are published with a rename, so a reader never sees
half a file. Same settings and seed, same bytes.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from medallion.clock import Clock
from medallion.config import Settings
from medallion.datagen.world import World, draw_event
from medallion.errors import ConfigError
from medallion.schemas import MAX_LINE_BYTES

MALFORMED_KINDS = (
    "not_json",
    "truncated",
    "wrong_type",
    "missing_field",
    "negative_amount",
    "unknown_currency",
    "unknown_channel",
    "bad_timestamp",
    "oversized",
)


@dataclass
class GenerationSummary:
    """What the generator wrote and injected."""

    files: int = 0
    events: int = 0
    fraud: int = 0
    duplicates: int = 0
    late: int = 0
    labels: int = 0
    corrections: int = 0
    malformed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MALFORMED_KINDS, 0))
    first_day: date | None = None
    last_day: date | None = None

    def table(self):
        from rich.table import Table

        days = f": {self.first_day} .. {self.last_day}" if self.first_day else ""
        table = Table(title=f"datagen{days}")
        table.add_column("what")
        table.add_column("count", justify="right")
        for name in ("files", "events", "fraud", "duplicates", "late", "labels", "corrections"):
            table.add_row(name, str(getattr(self, name)))
        for kind, count in self.malformed.items():
            table.add_row(f"malformed: {kind}", str(count))
        return table


def _malformed(rng: random.Random, record: dict, kind: str) -> str:
    broken = dict(record)
    if kind == "not_json":
        return f"<event {record['event_id']} lost its braces>"
    if kind == "truncated":
        text = json.dumps(record)
        return text[: len(text) // 2]
    if kind == "wrong_type":
        broken["amount"] = "twelve euros"
    elif kind == "missing_field":
        broken.pop(rng.choice(["card_id", "merchant_id", "event_ts", "currency"]))
    elif kind == "negative_amount":
        broken["amount"] = -abs(broken["amount"]) - 0.01
    elif kind == "unknown_currency":
        broken["currency"] = "XYZ"
    elif kind == "unknown_channel":
        broken["channel"] = "carrier_pigeon"
    elif kind == "bad_timestamp":
        broken["event_ts"] = "last tuesday at noon"
    elif kind == "oversized":
        broken["merchant_id"] = "x" * (MAX_LINE_BYTES + 10)
    return json.dumps(broken)


def _publish(folder: str, name: str, lines: list[str]) -> None:
    """Write under a hidden name, then rename: readers see whole files or none."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    hidden = os.path.join(folder, f".{name}.tmp")
    with open(hidden, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(hidden, os.path.join(folder, name))


def events_sink(settings: Settings, to: str = "landing") -> Callable[[str, list[str]], None]:
    """Where generated event lines go: ``landing`` (one file per call, published by rename)
    or ``kafka`` (one record per line on ``stream.kafka.topic``, malformed lines included)."""
    if to == "landing":
        return lambda name, lines: _publish(settings.storage.landing_events, name, lines)
    if to != "kafka":
        raise ConfigError(f"--to {to!r}: expected landing or kafka")
    from medallion.kafka.client import produce_lines

    kafka = settings.stream.kafka
    if not (kafka.bootstrap_servers and kafka.topic):
        raise ConfigError(
            "--to kafka needs stream.kafka.bootstrap_servers and stream.kafka.topic; set them in conf or with --set"
        )
    return lambda name, lines: produce_lines(kafka.bootstrap_servers, kafka.topic, lines, kafka.options)


def _day_lines(rng, world, settings, day, count, prefix, summary, sent):
    """Events of one day as landed lines (malformed, duplicates and late events mixed in)."""
    conf = settings.datagen
    lines, labels = [], []
    for index in range(count):
        late = rng.random() < conf.late_fraction
        event_day = day - timedelta(days=rng.randint(1, 3)) if late else day
        record, fraud = draw_event(rng, world, event_day, f"{prefix}-{index:07d}")
        if rng.random() < conf.malformed_fraction:
            kind = MALFORMED_KINDS[
                sum(summary.malformed.values()) % len(MALFORMED_KINDS)
            ]  # every kind, in turn
            summary.malformed[kind] += 1
            lines.append(_malformed(rng, record, kind))
            continue
        text = json.dumps(record)
        lines.append(text)
        sent.append(text)
        summary.events += 1
        summary.fraud += fraud
        summary.late += late
        labels.append((record["event_id"], fraud))
        if sent and rng.random() < conf.duplicate_fraction:
            lines.append(rng.choice(sent[-500:]))  # the same event re-sent, maybe from an earlier file
            summary.duplicates += 1
    return lines, labels


def _write_labels(rng, settings, day, labels, summary):
    conf = settings.datagen
    arrive = day + timedelta(days=conf.label_delay_days)
    at = datetime(arrive.year, arrive.month, arrive.day, 6, tzinfo=UTC)
    lines, corrections = [], []
    for event_id, fraud in labels:
        lines.append(json.dumps({"event_id": event_id, "is_fraud": fraud, "labeled_at": at.isoformat()}))
        if rng.random() < conf.label_correction_fraction:
            later = at + timedelta(days=1, hours=rng.randrange(12))
            corrections.append(
                json.dumps({"event_id": event_id, "is_fraud": not fraud, "labeled_at": later.isoformat()})
            )
            corrections.append(
                json.dumps(
                    {
                        "event_id": event_id,
                        "is_fraud": fraud,
                        "labeled_at": (later + timedelta(hours=1)).isoformat(),
                    }
                )
            )
    if lines:
        _publish(settings.storage.landing_labels, f"labels-{day:%Y%m%d}-0000.jsonl", lines)
        summary.files += 1
        summary.labels += len(lines)
    if corrections:
        _publish(settings.storage.landing_labels, f"labels-{day:%Y%m%d}-0001.jsonl", corrections)
        summary.files += 1
        summary.corrections += len(corrections) // 2


def generate_history(
    settings: Settings,
    days: int | None = None,
    events_per_day: int | None = None,
    end_date: date | None = None,
    seed: int | None = None,
    progress: bool = True,
    to: str = "landing",
) -> GenerationSummary:
    """Write ``days`` days of events (ending ``end_date``, default the clock's yesterday) and their
    labels; ``to="kafka"`` produces the event lines to ``stream.kafka.topic`` instead (labels
    always land as files: the nightly batch reads them)."""
    from rich.progress import Progress

    publish = events_sink(settings, to)
    conf = settings.datagen
    days = days or conf.days
    per_day = events_per_day or conf.events_per_day
    seed = conf.seed if seed is None else seed
    end_date = end_date or Clock.from_settings(settings).yesterday()
    first = end_date - timedelta(days=days - 1)
    rng = random.Random(seed)
    world = World(settings, seed, first, days)
    summary = GenerationSummary(first_day=first, last_day=end_date)
    sent: list[str] = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("generating landing files", total=days)
        for offset in range(days):
            day = first + timedelta(days=offset)
            lines, labels = _day_lines(
                rng, world, settings, day, per_day, f"{day:%Y%m%d}-s{seed}", summary, sent
            )
            chunk = max(1, -(-len(lines) // conf.files_per_day))
            for part, start in enumerate(range(0, len(lines), chunk)):
                publish(f"events-{day:%Y%m%d}-{part:04d}-s{seed}.jsonl", lines[start : start + chunk])
                summary.files += 1
            _write_labels(rng, settings, day, labels, summary)
            bar.advance(task)
    return summary


def follow(
    settings: Settings,
    rate: float | None = None,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    seed: int | None = None,
    to: str = "landing",
) -> GenerationSummary:
    """Drip today's events into the landing zone (one small file a second) or onto the Kafka
    topic (``to="kafka"``, the same lines as records), until stopped."""
    publish = events_sink(settings, to)
    conf = settings.datagen
    rate = rate or conf.follow_rate
    seed = (conf.seed if seed is None else seed) + 1_000_003
    rng = random.Random(seed)
    clock = Clock.from_settings(settings)
    today = clock.today()
    world = World(settings, conf.seed, today - timedelta(days=conf.days), conf.days + 1)
    summary = GenerationSummary(first_day=today, last_day=today)
    sent: list[str] = []
    stop = stop or threading.Event()
    started = time.monotonic()
    tick = 0
    while not stop.is_set() and (duration_s is None or time.monotonic() - started < duration_s):
        count = max(1, int(rng.gauss(rate, rate**0.5)))
        stamp = clock.now()
        lines, _ = _day_lines(
            rng, world, settings, today, count, f"live-{stamp:%Y%m%d%H%M%S}-{tick:05d}-s{seed}", summary, sent
        )
        # Live events happen now, not at a random hour of today.
        lines = [_stamp_now(line, stamp) for line in lines]
        publish(f"events-live-{stamp:%Y%m%d%H%M%S%f}-{tick:05d}.jsonl", lines)
        summary.files += 1
        tick += 1
        stop.wait(1.0)
    return summary


def _stamp_now(line: str, stamp: datetime) -> str:
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if isinstance(record, dict) and "event_ts" in record and record["event_ts"][:4].isdigit():
        record["event_ts"] = stamp.isoformat(timespec="milliseconds")
        return json.dumps(record)
    return line
