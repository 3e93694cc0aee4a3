"""Score transactions online: the store's profile, the shared feature definition, a precomputed
score on a hit, the champion in-process on a miss.

Usage::

    from medallion.serving.online import OnlineScorer, Transaction

    scorer = OnlineScorer(settings, store, watcher, request_log)
    [answer] = scorer.score([Transaction.model_validate(payload)])
    answer["score"], answer["decision"], answer["model_version"], answer["precomputed"]

    lookup = scorer.look_up(txns)         # the store's part: features, keys, precomputed scores
    lookup.misses                         # indexes the champion has to score
    answers = scorer.answer(lookup)       # scores the misses, writes them back, logs every answer

``score`` is ``answer(look_up(...))``; the API runs the look-up where it received the request
and only a lookup with misses on a worker thread.

A card with no profile for the event's day (new, or not materialized) scores with the
no-history defaults the batch and the stream use (zero counts, mean and spread, z-score 0,
not foreign), and the answer says so (``card_known: false`` and a note).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from medallion.config import Settings
from medallion.errors import MedallionError
from medallion.schemas import CHANNELS, COUNTRIES, CURRENCIES, FEATURE_COLUMNS, MERCHANT_CATEGORIES
from medallion.serving.champion import ChampionWatcher
from medallion.serving.rowmath import row_features
from medallion.serving.store import OnlineStore, Precomputed, prediction_key

_CENTS = Decimal("0.01")
_AMOUNT_LIMIT = Decimal(10) ** 16
UNKNOWN_CARD_NOTE = "no profile for this card on {day}: scored with the no-history defaults"


class NotReady(MedallionError):
    """The service has no checked champion or no store generation yet."""


def _one_of(value: str, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {field}: {value!r} (one of {', '.join(allowed)})")
    return value


class Transaction(BaseModel):
    """One transaction in the landing schema (numbers may also come as strings, as in the files)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event_id: str = Field(min_length=1, max_length=200)
    card_id: str = Field(min_length=1, max_length=200)
    merchant_id: str = Field(min_length=1, max_length=200)
    merchant_category: str
    amount: Decimal = Field(description="non-negative, at most 16 digits before the point; rounded to cents")
    currency: str
    country: str
    channel: str
    event_ts: datetime = Field(description="ISO 8601; without an offset it is UTC")

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise ValueError("amount is not a number")
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"amount is not a number: {value!r}") from None
        if not amount.is_finite():
            raise ValueError(f"amount is not a finite number: {value!r}")
        # Checked before rounding too: quantize cannot hold more digits than the decimal context.
        too_long = abs(amount) >= _AMOUNT_LIMIT
        if not too_long:
            # Silver casts to decimal(18,2), rounding half up; more digits do not fit.
            amount = amount.quantize(_CENTS, rounding=ROUND_HALF_UP)
        if amount < 0:
            raise ValueError("negative amount")
        if too_long or amount >= _AMOUNT_LIMIT:
            raise ValueError("amount has more than 16 digits before the point")
        return amount

    @field_validator("event_ts", mode="after")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("merchant_category")
    @classmethod
    def _category(cls, value: str) -> str:
        return _one_of(value, MERCHANT_CATEGORIES, "merchant_category")

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return _one_of(value, CURRENCIES, "currency")

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        return _one_of(value, COUNTRIES, "country")

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        return _one_of(value, CHANNELS, "channel")

    @property
    def event_date(self) -> date:
        return self.event_ts.date()


@dataclass(frozen=True)
class Lookup:
    """What :meth:`OnlineScorer.look_up` found: per transaction its features (and whether its card
    had a profile), its key and the store's score (None, or another version's, for a miss)."""

    txns: Sequence[Transaction]
    champion: Any
    built: list[tuple[dict[str, Any], bool]]
    keys: list[str]
    found: list[Precomputed | None]
    misses: list[int]
    started: float


class OnlineScorer:
    """Scores batches of :class:`Transaction`; ``request_log`` gets one record per answer."""

    def __init__(self, settings: Settings, store: OnlineStore, watcher: ChampionWatcher, request_log=None):
        self.settings = settings
        self.store = store
        self.watcher = watcher
        self.request_log = request_log

    def features(self, txn: Transaction) -> tuple[dict[str, Any], bool]:
        """The model inputs of ``txn`` and whether its card had a profile for the day."""
        profile = self.store.profile(txn.card_id, txn.event_date)
        return row_features(txn.model_dump(), profile), profile is not None

    def look_up(self, txns: Sequence[Transaction]) -> Lookup:
        """Features, keys and the store's precomputed scores of ``txns`` (no model runs)."""
        started = time.perf_counter()
        champion = self.watcher.current
        if champion is None:
            raise NotReady(self.watcher.problem or "the champion is not loaded yet")
        decimals = self.settings.serving.round_decimals
        built = [self.features(txn) for txn in txns]
        keys = [prediction_key(features, champion.version, decimals) for features, _ in built]
        found = self.store.predictions(keys)
        misses = [i for i, hit in enumerate(found) if hit is None or hit.model_version != champion.version]
        return Lookup(txns, champion, built, keys, found, misses, started)

    def answer(self, lookup: Lookup) -> list[dict[str, Any]]:
        """The answers of a :meth:`look_up`: its misses scored by its champion and written back."""
        txns, champion, built, keys = lookup.txns, lookup.champion, lookup.built, lookup.keys
        found = list(lookup.found)
        threshold = self.settings.model.decision_threshold
        misses = lookup.misses
        if misses:
            scores = self._predict(champion, [built[i][0] for i in misses])
            computed = {}
            for i, score in zip(misses, scores, strict=True):
                value = float(score)
                if not 0.0 <= value <= 1.0:  # NaN fails this too
                    raise MedallionError(
                        f"{champion.name} v{champion.version} gave {value} for event {txns[i].event_id!r}, "
                        "not a probability: nothing was answered or written back"
                    )
                found[i] = computed[keys[i]] = Precomputed(
                    value, value >= threshold, champion.version, "online"
                )
            self.store.write_back(computed)
        missed = set(misses)
        elapsed_ms = (time.perf_counter() - lookup.started) * 1000
        answers = []
        for i, txn in enumerate(txns):
            hit = found[i]
            features, known = built[i]
            answer = {
                "event_id": txn.event_id,
                "score": hit.score,
                # The threshold of now: a precomputed decision of another threshold does not answer.
                "decision": hit.score >= threshold,
                "model_name": champion.name,
                "model_version": champion.version,
                "precomputed": i not in missed,
                "source": hit.source if i not in missed else "model",
                "scored_by": champion.scored_by if i in missed else None,
                "card_known": known,
                "notes": [] if known else [UNKNOWN_CARD_NOTE.format(day=txn.event_date.isoformat())],
            }
            answers.append(answer)
            if self.request_log is not None:
                self.request_log.add(txn, features, keys[i], answer, elapsed_ms)
        return answers

    def score(self, txns: Sequence[Transaction]) -> list[dict[str, Any]]:
        """One answer per transaction: :meth:`answer` of :meth:`look_up`."""
        return self.answer(self.look_up(txns))

    @staticmethod
    def _predict(champion, rows: list[dict[str, Any]]) -> list[float]:
        if champion.row_scorer is not None:
            return [champion.row_scorer(row) for row in rows]
        import pandas as pd

        scores = champion.model.predict(pd.DataFrame(rows, columns=list(FEATURE_COLUMNS)))
        return list(scores.to_numpy() if hasattr(scores, "to_numpy") else scores)
