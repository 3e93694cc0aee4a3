"""What an ingest did: per batch (:class:`FeedCounts`, :class:`IngestedBatch`) and per run
(:class:`IngestReport`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from pyspark.sql import DataFrame

from medallion.config import Settings
from medallion.expectations import declared

FEEDS = ("events", "labels")


@dataclass
class FeedCounts:
    """What one batch of one feed did.

    ``bronze == silver + quarantined + duplicates + dropped`` always holds (``dropped``
    includes the ``blank`` lines); ``expectations`` counts the rows that broke each declared
    expectation, whatever its action.
    """

    feed: str
    files: int = 0
    bronze: int = 0
    silver: int = 0
    quarantined: int = 0
    duplicates: int = 0
    dropped: int = 0
    blank: int = 0
    missing: int = 0  # files listed that vanished before they were read (quarantined as records)
    unread: int = 0  # files with a line too long to read (quarantined as records, not lines)
    expectations: dict[str, int] = field(default_factory=dict)
    skipped_replay: bool = False

    def add(self, other: FeedCounts) -> None:
        self.files += other.files
        self.bronze += other.bronze
        self.silver += other.silver
        self.quarantined += other.quarantined
        self.duplicates += other.duplicates
        self.dropped += other.dropped
        self.blank += other.blank
        self.missing += other.missing
        self.unread += other.unread
        for name, broken in other.expectations.items():
            self.expectations[name] = self.expectations.get(name, 0) + broken


@dataclass
class IngestedBatch:
    """The outcome of :meth:`~medallion.ingest.Ingestor.process`: counts, and the batch's silver rows."""

    counts: FeedCounts
    silver_rows: DataFrame | None
    cached: list[DataFrame]
    valid: int = 0  # rows that passed every check, before deduplication
    # When each of the batch's files landed (microseconds), if the landed lines had ``landed_at``.
    landed_us: dict[str, int] = field(default_factory=dict)
    event_dates: list[date] = field(default_factory=list)  # the event_date values of an events batch
    files_read: list[str] = field(default_factory=list)  # local paths of the files that gave a line

    def counted(self, silver: int) -> None:
        """Record the silver row count; every valid row that is not in silver is a duplicate."""
        self.counts.silver = silver
        self.counts.duplicates = self.valid - silver

    def release(self) -> None:
        for frame in self.cached:
            frame.unpersist()


@dataclass
class IngestReport:
    """A whole run (``medallion ingest --mode batch``): the counts of each feed summed over its batches."""

    feeds: dict[str, FeedCounts] = field(default_factory=lambda: {f: FeedCounts(f) for f in FEEDS})
    seconds: float = 0.0
    event_dates: set[date] = field(default_factory=set)  # the event dates the run's events carry

    COLUMNS = ("feed", "files", "bronze", "silver", "quarantined", "duplicates", "dropped")

    def rows(self) -> list[tuple[str, int, int, int, int, int, int]]:
        return [
            (c.feed, c.files, c.bronze, c.silver, c.quarantined, c.duplicates, c.dropped)
            for c in self.feeds.values()
        ]

    def expectation_rows(self, settings: Settings) -> list[tuple[str, str, str, int]]:
        """``(feed.name, check, action, rows that broke it)`` for every declared expectation."""
        return [
            (f"{feed}.{rule.name}", rule.check, rule.action, self.feeds[feed].expectations.get(rule.name, 0))
            for feed in FEEDS
            for rule in declared(settings, feed)
        ]
