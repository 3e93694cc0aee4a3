"""Synthetic landing zone: card transactions, late chargeback labels, and the mess real feeds carry.

Usage::

    from medallion.datagen import generate_history, follow

    summary = generate_history(settings, days=14, events_per_day=2000)   # history ending yesterday
    follow(settings, rate=50, duration_s=60)                              # live files for the stream

The fraud signal is real but noisy. A few cards get compromised; each fraud event shows
each trait (abroad, at night, far above the card's usual amount, a risky category,
online) only with some probability, and a share of fraud looks entirely ordinary. Honest
cardholders show the same traits at realistic rates: travellers, night owls, big
purchases, electronics. A model learns it (ROC AUC around 0.9), never perfectly. Files
are published with a rename, so a reader never sees half a file. Same settings and seed,
same bytes.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import accumulate
from pathlib import Path

from medallion.clock import Clock
from medallion.config import Settings
from medallion.errors import ConfigError
from medallion.schemas import (
    CHANNELS,
    COUNTRIES,
    CURRENCIES,
    MAX_LINE_BYTES,
    MERCHANT_CATEGORIES,
    RISKY_CATEGORIES,
)

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
SAFE_CATEGORIES = tuple(c for c in MERCHANT_CATEGORIES if c not in RISKY_CATEGORIES)
HOME_COUNTRIES = COUNTRIES[:13]  # European cards; the rest are abroad for everyone
OFFSETS = (
    UTC,
    timezone(timedelta(hours=1)),
    timezone(timedelta(hours=-5)),
    timezone(timedelta(hours=9)),
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


@dataclass(frozen=True)
class _Card:
    card_id: str
    home: str
    currency: str
    scale: float
    compromised_on: date | None
    activity: float  # how often the card is used, relative to others
    spread: float  # how much the card's honest amounts vary around its scale
    big: float  # share of the card's honest events far above its usual amount
    travel: float  # share of the card's honest events abroad
    night: float  # share of the card's honest events between midnight and 6 UTC


FRAUD_SHARE = 0.02  # of all traffic, once some card is compromised
NIGHT_HOURS = (0, 1, 2, 3, 4, 5)
# Honest behaviour that looks like fraud: per-card propensities, then per-event rates.
TRAVEL_RATES = (0.01, 0.03, 0.12)  # homebodies, occasional and frequent travellers
NIGHT_RATES = (0.02, 0.05, 0.2)  # day people, late shoppers, night-shift workers
BIG_PURCHASE_RATES = (0.01, 0.04, 0.12)  # several times the card's usual amount
HONEST_RISKY = 0.1  # electronics, jewelry, gaming, money transfers
# Fraud: each trait on its own coin, so few frauds show all of them; some show none.
FRAUD_LOOKS_ORDINARY = 0.1  # card testing, small purchases: drawn like an honest event
FRAUD_NIGHT = 0.6
FRAUD_ABROAD = 0.6
FRAUD_BIG = 0.6
FRAUD_RISKY = 0.6
FRAUD_ECOM = 0.6


class _World:
    """Cards and merchants drawn once from the seed."""

    def __init__(self, settings: Settings, seed: int, first_day: date, days: int):
        conf = settings.datagen
        rng = random.Random(seed)
        self.merchants = [f"m-{i:05d}" for i in range(conf.merchants)]
        self.cards = []
        for i in range(conf.cards):
            home = rng.choice(HOME_COUNTRIES)
            compromised = rng.random() < conf.compromised_card_fraction
            self.cards.append(
                _Card(
                    f"card-{i:06d}",
                    home,
                    rng.choice(CURRENCIES[:8]),
                    rng.lognormvariate(3.3, 0.6),
                    first_day + timedelta(days=rng.randrange(max(days, 1))) if compromised else None,
                    rng.lognormvariate(0, 0.8),
                    rng.uniform(0.3, 0.8),
                    rng.choice(BIG_PURCHASE_RATES),
                    rng.choice(TRAVEL_RATES),
                    rng.choice(NIGHT_RATES),
                )
            )
        if conf.compromised_card_fraction > 0 and not any(c.compromised_on for c in self.cards):
            # A small world still gets its fraud: at least one card is compromised.
            victim = rng.randrange(len(self.cards))
            self.cards[victim] = replace(
                self.cards[victim], compromised_on=first_day + timedelta(days=rng.randrange(max(days, 1)))
            )
        self.cum_activity = list(accumulate(c.activity for c in self.cards))

    def compromised_by(self, day: date) -> list[_Card]:
        return [c for c in self.cards if c.compromised_on is not None and c.compromised_on <= day]


def _abroad(rng: random.Random, card: _Card) -> str:
    return rng.choice([c for c in COUNTRIES if c != card.home])


def _honest(rng: random.Random, card: _Card) -> tuple[int, str, float, str, str]:
    """Hour, country, amount, category and channel of an honest purchase on ``card``."""
    hour = rng.choice(NIGHT_HOURS) if rng.random() < card.night else min(23, max(6, int(rng.gauss(14, 4))))
    country = _abroad(rng, card) if rng.random() < card.travel else card.home
    amount = card.scale * rng.lognormvariate(0, card.spread)
    if rng.random() < card.big:
        amount *= rng.uniform(2.0, 8.0)
    category = rng.choice(RISKY_CATEGORIES) if rng.random() < HONEST_RISKY else rng.choice(SAFE_CATEGORIES)
    channel = rng.choices(CHANNELS, weights=(6, 3, 1))[0]
    return hour, country, amount, category, channel


def _fraud(rng: random.Random, card: _Card) -> tuple[int, str, float, str, str]:
    """A fraudster's purchase: an honest one with each fraud trait switched on by its own coin."""
    hour, country, amount, category, channel = _honest(rng, card)
    if rng.random() < FRAUD_LOOKS_ORDINARY:
        return hour, country, amount, category, channel
    if rng.random() < FRAUD_NIGHT:
        hour = rng.choice(NIGHT_HOURS)
    if rng.random() < FRAUD_ABROAD:
        country = _abroad(rng, card)
    if rng.random() < FRAUD_BIG:
        amount = card.scale * rng.uniform(2.0, 10.0)
    if rng.random() < FRAUD_RISKY:
        category = rng.choice(RISKY_CATEGORIES)
    if rng.random() < FRAUD_ECOM:
        channel = "ecom"
    return hour, country, amount, category, channel


def _event(rng: random.Random, world: _World, day: date, seq: str) -> tuple[dict, bool]:
    # Fraudsters spend fast: a compromised card's fraud is a share of all traffic, not of its own.
    active = world.compromised_by(day)
    fraud = bool(active) and rng.random() < FRAUD_SHARE
    card = rng.choice(active) if fraud else rng.choices(world.cards, cum_weights=world.cum_activity)[0]
    hour, country, amount, category, channel = (_fraud if fraud else _honest)(rng, card)
    offset = rng.choice(OFFSETS)
    instant = datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60), tzinfo=UTC)
    instant += timedelta(milliseconds=rng.randrange(1000))
    record = {
        "event_id": f"evt-{seq}",
        "card_id": card.card_id,
        "merchant_id": rng.choice(world.merchants),
        "merchant_category": category,
        "amount": round(amount, 2),
        "currency": card.currency,
        "country": country,
        "channel": channel,
        "event_ts": instant.astimezone(offset).isoformat(timespec="milliseconds"),
    }
    return record, fraud


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
        record, fraud = _event(rng, world, event_day, f"{prefix}-{index:07d}")
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
    world = _World(settings, seed, first, days)
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
    world = _World(settings, conf.seed, today - timedelta(days=conf.days), conf.days + 1)
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
