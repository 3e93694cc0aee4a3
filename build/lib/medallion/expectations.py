"""Declared row expectations, as Delta Live Tables has them: a SQL condition and what to do
with a row that breaks it.

Usage::

    from medallion.expectations import Expectation, declared

    small = Expectation("amount_below_50k", "amount < 50000", action="quarantine")
    rules = declared(settings, "events")          # from conf, checked against silver's columns

    # conf/base.yaml
    # expectations:
    #   events:
    #     amount_below_50k: {check: "amount < 50000", action: quarantine}

The actions:

- ``warn``: the row goes to silver; it is counted.
- ``drop``: the row stays out of silver and quarantine, and it is counted. Bronze still holds
  the line, so nothing is lost.
- ``quarantine``: the row goes to silver.quarantine with the reason
  ``expectation failed: <name> (<check>)``.
- ``fail``: the batch stops before it writes anything. One line names the expectation and
  the number of rows that broke it.

A row breaks a check only when the check is false. A null result counts as met, as with a
SQL ``CHECK`` constraint: a missing field is already quarantined by the built-in checks, so
it does not need its own rule. Checks see the typed silver columns, e.g. ``amount``,
``event_ts``, ``channel``.

The built-in checks in :mod:`medallion.silver` (required fields, types, ISO codes) are code
declared and quarantine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pyspark.sql import Column
from pyspark.sql import functions as F

from medallion.errors import ConfigError, MedallionError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.types import StructType

    from medallion.config import Settings

Action = Literal["warn", "drop", "quarantine", "fail"]


class ExpectationFailed(MedallionError):
    """A ``fail`` expectation was broken; the batch wrote nothing."""


@dataclass(frozen=True)
class Expectation:
    """One rule: rows should meet ``check`` (Spark SQL); ``action`` says what happens if not."""

    name: str
    check: str
    action: Action = "quarantine"

    def broken(self) -> Column:
        """True where the row breaks the check (false, not null, as SQL CHECK constraints)."""
        return F.coalesce(~F.expr(self.check), F.lit(False))

    @property
    def reason(self) -> str:
        return f"expectation failed: {self.name} ({self.check})"


def declared(settings: Settings, feed: str) -> tuple[Expectation, ...]:
    """The expectations conf declares for ``feed`` (``events`` or ``labels``), in conf order."""
    section = getattr(settings.expectations, feed)
    return tuple(Expectation(name, rule.check, rule.action) for name, rule in section.items())


def validate(spark: SparkSession, feed: str, rules: Iterable[Expectation], schema: StructType) -> None:
    """Fail early, in one line, on a check that does not compile against the silver columns."""
    empty = spark.createDataFrame([], schema)
    for rule in rules:
        try:
            empty.where(F.expr(rule.check)).schema  # noqa: B018 - analysis happens on access
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"expectations.{feed}.{rule.name}.check {rule.check!r} does not compile: {first}; "
                f"use silver columns ({', '.join(schema.fieldNames())})"
            ) from None


def fail_if_broken(feed: str, rules: Iterable[Expectation], broken_counts: dict[str, int]) -> None:
    """Raise :class:`ExpectationFailed` naming the first ``fail`` rule any row broke."""
    for rule in rules:
        if rule.action == "fail" and broken_counts.get(rule.name, 0) > 0:
            raise ExpectationFailed(
                f"expectation {feed}.{rule.name} ({rule.check}) failed on {broken_counts[rule.name]} "
                f"row(s); nothing was written: fix the data or set expectations.{feed}.{rule.name}.action"
                " to warn, drop or quarantine"
            )
