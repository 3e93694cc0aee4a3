"""The business day: one clock for everything that asks "what day is it?".

Usage::

    from medallion.clock import Clock

    clock = Clock.from_settings(settings)   # clock.today in conf, --today, or the real UTC date
    clock.today()                           # retention cut-offs, datagen's live day
    clock.yesterday()                       # the nightly batch's and datagen's default last day
    clock.now()                             # today's date at the real UTC time of day

A run pins the day with ``--today YYYY-MM-DD`` (or ``clock.today`` in conf, or
``MEDALLION__CLOCK__TODAY``) to replay a night, backfill as of a date, or test at any date.
Record timestamps (``ingested_at``, ``scored_at``, file ages) stay wall time: they say when
something happened, not which business day it belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medallion.config import Settings


@dataclass(frozen=True)
class Clock:
    """``Clock()`` follows the real UTC date; ``Clock(date(2027, 1, 1))`` is pinned to that day."""

    pinned: date | None = None

    def __post_init__(self) -> None:
        if self.pinned is not None and (
            not isinstance(self.pinned, date) or isinstance(self.pinned, datetime)
        ):
            raise TypeError(f"Clock(pinned=...) takes a datetime.date, got {type(self.pinned).__name__}")

    @classmethod
    def from_settings(cls, settings: Settings) -> Clock:
        return cls(settings.clock.today)

    def today(self) -> date:
        return self.pinned or datetime.now(UTC).date()

    def yesterday(self) -> date:
        return self.today() - timedelta(days=1)

    def now(self) -> datetime:
        """The current UTC time of day on :meth:`today` (the real instant when not pinned)."""
        real = datetime.now(UTC)
        return real if self.pinned is None else datetime.combine(self.pinned, real.timetz())


__all__ = ["Clock"]
