"""The one feature definition (:func:`medallion.features.feature_math`) evaluated on one row.

Usage::

    from medallion.serving.rowmath import row_features

    row_features(event, profile)   # {'log_amount': 3.9, 'hour': 8.0, ..., 'channel': 'pos', ...}

``event`` is a validated transaction (``amount`` a Decimal, ``event_ts`` an aware datetime);
``profile`` the card's profile for the event's day, or None. The feature math is not written
here: :class:`RowFunctions` offers the handful of ``pyspark.sql.functions`` that
``feature_math`` calls, with SQL's null semantics, so the online service computes the values
the batch and the stream compute, without a JVM.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from medallion.features import PROFILE_COLUMNS, feature_math
from medallion.schemas import CATEGORICAL_FEATURES, FEATURE_COLUMNS, NUMERIC_FEATURES


class Value:
    """A SQL value: None is NULL, and every operator propagates it as Spark does."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def cast(self, to: str) -> Value:
        if to != "double":
            raise ValueError(f"rowmath casts only to double, not {to!r}")
        return Value(None if self.v is None else float(self.v))

    def _binary(self, other: Any, op: Callable[[Any, Any], Any]) -> Value:
        right = other.v if isinstance(other, Value) else other
        return Value(None if self.v is None or right is None else op(self.v, right))

    def __sub__(self, other: Any) -> Value:
        return self._binary(other, operator.sub)

    def __truediv__(self, other: Any) -> Value:
        # Spark (ANSI off) divides by zero into NULL.
        return self._binary(other, lambda a, b: None if b == 0 else a / b)

    def __gt__(self, other: Any) -> Value:  # type: ignore[override]
        return self._binary(other, operator.gt)

    def __ne__(self, other: Any) -> Value:  # type: ignore[override]
        return self._binary(other, operator.ne)

    def __and__(self, other: Value) -> Value:
        # Three-valued AND: false wins over NULL.
        if self.v is False or other.v is False:
            return Value(False)
        if self.v is None or other.v is None:
            return Value(None)
        return Value(True)

    def __bool__(self) -> bool:
        raise TypeError("a SQL value has no Python truth value: use when(...)")

    __hash__ = None  # type: ignore[assignment]


class _When:
    def __init__(self, condition: Value, value: Value) -> None:
        self.condition, self.value = condition, value

    def otherwise(self, value: Value) -> Value:
        return self.value if self.condition.v is True else value


class RowFunctions:
    """``col``, ``lit``, ``log1p``, ``hour``, ``dayofweek``, ``coalesce``, ``when`` over one row."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        self.row = row

    def col(self, name: str) -> Value:
        return Value(self.row[name])

    @staticmethod
    def lit(value: Any) -> Value:
        return Value(value)

    @staticmethod
    def log1p(x: Value) -> Value:
        # Spark gives NULL at or below -1.
        return Value(None if x.v is None or x.v <= -1 else math.log1p(x.v))

    @staticmethod
    def hour(ts: Value) -> Value:
        return Value(None if ts.v is None else _utc(ts.v).hour)

    @staticmethod
    def dayofweek(ts: Value) -> Value:
        # Spark: 1 = Sunday ... 7 = Saturday.
        return Value(None if ts.v is None else _utc(ts.v).isoweekday() % 7 + 1)

    @staticmethod
    def coalesce(*values: Value) -> Value:
        return next((v for v in values if v.v is not None), Value(None))

    @staticmethod
    def when(condition: Value, value: Value) -> _When:
        return _When(condition, value)


def _utc(ts: datetime) -> datetime:
    # medallion's sessions run in UTC (spark.sql.session.timeZone), so hour and weekday are UTC's.
    return ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)


def row_features(event: Mapping[str, Any], profile: Mapping[str, Any] | None) -> dict[str, Any]:
    """The model inputs (:data:`~medallion.schemas.FEATURE_COLUMNS`) of one event.

    ``event`` needs ``amount`` (Decimal or number), ``event_ts``, ``country``, ``channel``
    and ``merchant_category``; a missing ``profile`` is a card without history.
    """
    amount = event["amount"]
    row = {
        "amount": amount if isinstance(amount, Decimal) else Decimal(str(amount)),
        "event_ts": event["event_ts"],
        "country": event["country"],
        **{name: (profile or {}).get(name) for name in PROFILE_COLUMNS},
    }
    computed = feature_math(RowFunctions(row))
    out: dict[str, Any] = {name: computed[name].v for name in NUMERIC_FEATURES}
    out.update({name: event[name] for name in CATEGORICAL_FEATURES})
    return {name: out[name] for name in FEATURE_COLUMNS}
