"""The online store: what the scoring service reads, refreshed a whole generation at a time.

Usage::

    from medallion.serving.store import Snapshot, prediction_key
    from medallion.serving.stores import open_store

    store = open_store(settings)                  # serving.store: sqlite (default) | redis
    store.publish(Snapshot(profiles=[...], predictions=[...], serving=[...], info={...}))
    store.current()                               # Generation(id=3, info={...}) or None
    store.profile("card-0001", date(2026, 12, 6)) # {'txn_count_30d': 12.0, ...} or None
    key = prediction_key(features, "4", decimals=6)
    store.predictions([key])                      # [Precomputed(score=0.91, ...)] or [None]
    store.write_back({key: Precomputed(...)})     # a miss the service scored
    store.serving_row("evt-000123")               # the serving row, or None
    store.put_stream_rows([{"event_id": "evt-000124", "source": "speed", ...}])  # the stream's

Three kinds of record: card profiles by (card, day), precomputed predictions keyed by
:func:`prediction_key` (SHA-256 of the fixed-point rounded model inputs and the model
version, so a score of one version never answers for another), and serving rows by event
id. :meth:`OnlineStore.publish` writes a new generation beside the current one and switches
to it in one step: a reader sees the old generation or the new one, never a mix. Scores the
service writes back live outside generations (a refresh does not drop them) until the next
refresh, which precomputes them from ``gold.online_requests``. Serving rows the stream
commits between two refreshes live outside generations too (:meth:`OnlineStore.put_stream_rows`),
so an event is answered within a trigger of being scored; the batch layer still wins: a batch
row in the current generation is served over them.
"""

from __future__ import annotations

import abc
import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from medallion.features import PROFILE_COLUMNS
from medallion.schemas import FEATURE_COLUMNS, NUMERIC_FEATURES


@dataclass(frozen=True)
class Precomputed:
    """A score for one key. ``source``: ``serving`` (batch or speed), ``night`` (a missed online
    input the night scored) or ``online`` (written back by the service)."""

    score: float
    decision: bool
    model_version: str
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "decision": self.decision,
            "model_version": self.model_version,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Precomputed:
        return cls(float(d["score"]), bool(d["decision"]), str(d["model_version"]), str(d["source"]))


@dataclass(frozen=True)
class Generation:
    """One published refresh: its number and what materialize recorded about it."""

    id: int
    info: dict[str, Any]


@dataclass
class Snapshot:
    """Everything one refresh publishes.

    ``profiles``: dicts with ``card_id``, ``profile_date`` (date or ISO string) and
    :data:`~medallion.features.PROFILE_COLUMNS`; ``predictions``: ``(key, Precomputed)``;
    ``serving``: serving rows as JSON-ready dicts with ``event_id``.
    """

    profiles: Iterable[Mapping[str, Any]] = ()
    predictions: Iterable[tuple[str, Precomputed]] = ()
    serving: Iterable[Mapping[str, Any]] = ()
    info: dict[str, Any] = field(default_factory=dict)


def fixed_point(value: Any, decimals: int) -> str:
    """``value`` rounded half-even to ``decimals`` places, as an integer count of 10^-decimals
    (``12.3456789, 6`` -> ``'12345679'``); NULL and NaN as ``'null'``.

    Exact on the double's binary value: no float formatting decides the key.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    scaled = Decimal(value).scaleb(decimals).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return str(int(scaled))


def prediction_key(features: Mapping[str, Any], model_version: str, decimals: int) -> str:
    """SHA-256 (hex) of the model version and every model input, numbers in fixed point."""
    parts = [f"v={model_version}", f"d={decimals}"]
    for name in FEATURE_COLUMNS:
        value = features[name]
        encoded = (
            fixed_point(value, decimals)
            if name in NUMERIC_FEATURES
            else ("null" if value is None else str(value))
        )
        # Length-prefixed, so no value can forge a separator.
        parts.append(f"{name}:{len(encoded)}:{encoded}")
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def jsonable_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A serving row with its dates and times in ISO form, as every store keeps them."""
    return {k: v.isoformat() if isinstance(v, date | datetime) else v for k, v in row.items()}


def newest_serving_row(
    generation_row: dict[str, Any] | None, stream_row: dict[str, Any] | None
) -> dict[str, Any] | None:
    """What answers for an event: the current generation's batch row (the batch layer is the
    truth), else the stream's newer row, else the generation's."""
    if generation_row is not None and (stream_row is None or generation_row.get("source") == "batch"):
        return generation_row
    return stream_row


def profile_values(row: Mapping[str, Any]) -> dict[str, Any]:
    """The profile columns of a row, numbers as floats."""
    out = {}
    for name in PROFILE_COLUMNS:
        value = row.get(name)
        out[name] = value if value is None or name == "usual_country" else float(value)
    return out


class OnlineStore(abc.ABC):
    """The contract both stores keep (``tests/serving/test_store_contract.py`` runs it on each)."""

    kind: str = "?"

    @abc.abstractmethod
    def publish(self, snapshot: Snapshot) -> Generation:
        """Write ``snapshot`` as a new generation and make it current in one step."""

    @abc.abstractmethod
    def current(self) -> Generation | None:
        """The generation readers see now, or None before the first publish."""

    @abc.abstractmethod
    def profile(self, card_id: str, day: date) -> dict[str, Any] | None:
        """The card's profile for ``day`` in the current generation."""

    @abc.abstractmethod
    def predictions(self, keys: Sequence[str]) -> list[Precomputed | None]:
        """Per key: the current generation's precomputed score, else a written-back one."""

    @abc.abstractmethod
    def write_back(self, scores: Mapping[str, Precomputed]) -> None:
        """Keep scores the service computed, so the same inputs hit next time."""

    @abc.abstractmethod
    def serving_row(self, event_id: str) -> dict[str, Any] | None:
        """The event's serving row: :func:`newest_serving_row` of the current generation's
        and the stream's."""

    @abc.abstractmethod
    def put_stream_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Keep serving rows the stream committed (JSON-ready, :func:`jsonable_row`) until
        ``serving.stream_rows_ttl_hours`` pass: by then a refresh has published them."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise :class:`~medallion.errors.MedallionError` if the store cannot be reached."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def describe(self) -> str:
        return self.kind


def day_text(day: date | str) -> str:
    return day if isinstance(day, str) else day.isoformat()
