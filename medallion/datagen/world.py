"""The synthetic world: cards, merchants, and how honest and fraudulent spending differ.

The fraud signal is real but noisy. A few cards get compromised; each fraud event shows
each trait (abroad, at night, far above the card's usual amount, a risky category,
online) only with some probability, and a share of fraud looks entirely ordinary. Honest
cardholders show the same traits at realistic rates: travellers, night owls, big
purchases, electronics. A model learns it (ROC AUC around 0.9), never perfectly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import accumulate

from medallion.config import Settings
from medallion.schemas import CHANNELS, COUNTRIES, CURRENCIES, MERCHANT_CATEGORIES, RISKY_CATEGORIES

SAFE_CATEGORIES = tuple(c for c in MERCHANT_CATEGORIES if c not in RISKY_CATEGORIES)
HOME_COUNTRIES = COUNTRIES[:13]  # European cards; the rest are abroad for everyone
OFFSETS = (
    UTC,
    timezone(timedelta(hours=1)),
    timezone(timedelta(hours=-5)),
    timezone(timedelta(hours=9)),
)


@dataclass(frozen=True)
class Card:
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


class World:
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
                Card(
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

    def compromised_by(self, day: date) -> list[Card]:
        return [c for c in self.cards if c.compromised_on is not None and c.compromised_on <= day]


def _abroad(rng: random.Random, card: Card) -> str:
    return rng.choice([c for c in COUNTRIES if c != card.home])


def _honest(rng: random.Random, card: Card) -> tuple[int, str, float, str, str]:
    """Hour, country, amount, category and channel of an honest purchase on ``card``."""
    hour = rng.choice(NIGHT_HOURS) if rng.random() < card.night else min(23, max(6, int(rng.gauss(14, 4))))
    country = _abroad(rng, card) if rng.random() < card.travel else card.home
    amount = card.scale * rng.lognormvariate(0, card.spread)
    if rng.random() < card.big:
        amount *= rng.uniform(2.0, 8.0)
    category = rng.choice(RISKY_CATEGORIES) if rng.random() < HONEST_RISKY else rng.choice(SAFE_CATEGORIES)
    channel = rng.choices(CHANNELS, weights=(6, 3, 1))[0]
    return hour, country, amount, category, channel


def _fraud(rng: random.Random, card: Card) -> tuple[int, str, float, str, str]:
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


def draw_event(rng: random.Random, world: World, day: date, seq: str) -> tuple[dict, bool]:
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
