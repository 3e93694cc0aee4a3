"""Whole landing files: which are complete, and quarantine records for those that gave no line.

A line goes to quarantine with its reason when it cannot be parsed. Some files give no line
to quarantine: one deleted after it was listed, or one whose lines are all longer than the
reader holds (:data:`~medallion.schemas.UNREAD_LINE_BYTES`). Each such file gets one
quarantine row (``raw`` null, ``source_file`` the file, the reason), written once, whichever
writer (the night or a stream) finds it first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import Row
from pyspark.sql import functions as F

from medallion.bronze import local_path, unread_bytes
from medallion.schemas import QUARANTINE_SCHEMA, UNREAD_LINE_BYTES
from medallion.silver import ParsedFeed
from medallion.tables import Table
from medallion.tables.arrow import driver_rows

MISSING_FILE = "missing file: deleted after it was listed, before it was read"
UNREAD_LINE = f"unread line: over {UNREAD_LINE_BYTES} bytes, skipped by the reader unparsed"


def landing_files(folder: str) -> list[str]:
    """Complete landing files: writers publish with a rename, hidden names are still being written."""
    if not os.path.isdir(folder):
        return []
    return sorted(
        str(Path(folder, name).resolve())
        for name in os.listdir(folder)
        if not name.startswith((".", "_")) and os.path.isfile(os.path.join(folder, name))
    )


def settled(source_file: str, listed_size: int | None, settle_seconds: float) -> bool:
    """Whether a file was complete when read: the same size now, and unchanged for
    ``settle_seconds``. A file gone since was read whole at listing (Spark reads the length
    it listed), so it counts as complete."""
    if not source_file.startswith("file:") or listed_size is None:
        return True  # an object store publishes a file whole; Kafka records are whole
    try:
        now = os.stat(local_path(source_file))
    except FileNotFoundError:
        return True
    unchanged_for = time.time() - now.st_mtime
    return now.st_size == listed_size and unchanged_for >= settle_seconds


class FileRecords:
    """The quarantine rows of whole files, in ``quarantine`` (silver.quarantine).

    Usage::

        records = FileRecords(lake.open(QUARANTINE))
        missing, unread = records.lineless("events", listed, owner=ledger.owner)
        records.unreadable("events")   # local paths recorded as unread: not read again
    """

    def __init__(self, quarantine: Table) -> None:
        self.quarantine = quarantine

    def lineless(
        self,
        feed: str,
        listed: Sequence[str],
        owner: Callable[[str], object | None],
        txn: tuple[str, int] | None = None,
    ) -> tuple[int, int]:
        """Record the listed files (local paths) that gave no line and have no ``owner``:
        vanished, or too long a line. Returns (missing, unread). ``txn`` keys the write for a
        caller that may replay it (a micro-batch)."""
        found: dict[str, str] = {}
        for path in listed:
            if owner(f"file:{path}") is not None:
                continue  # a batch read lines from it
            try:
                size = os.path.getsize(path)
            except FileNotFoundError:
                found[path] = MISSING_FILE
                continue
            if size >= UNREAD_LINE_BYTES // 2:
                found[path] = UNREAD_LINE
        recorded = self.record(feed, found, txn)
        missing = sum(reason == MISSING_FILE for reason in recorded.values())
        return missing, len(recorded) - missing

    def unread(
        self,
        feed: str,
        parsed: ParsedFeed,
        summary: Row,
        sizes: Mapping[str, int | None],
        txn: tuple[str, int],
    ) -> int:
        """Record each of a batch's files whose bytes its lines do not account for: the
        reader skipped a line there too long to read. One cheap test on the batch's totals;
        the files are looked at one by one only when it fails."""
        if None in sizes.values():
            return 0
        threshold = UNREAD_LINE_BYTES // 2
        if unread_bytes(sum(sizes.values()), summary.line_bytes or 0, summary.rows, len(sizes)) < threshold:
            return 0
        per_file = parsed.rows.groupBy("source_file").agg(
            F.sum(F.octet_length("raw") + 1).alias("line_bytes"), F.count("*").alias("lines")
        )
        found = {
            local_path(row.source_file): UNREAD_LINE
            for row in per_file.collect()
            if unread_bytes(sizes[row.source_file], row.line_bytes, row.lines) >= threshold
        }
        return len(self.record(feed, found, txn))

    def unreadable(self, feed: str) -> set[str]:
        """Local paths of the files recorded as having no readable line."""
        return {
            local_path(row.source_file)
            for row in self.quarantine.read()
            .where((F.col("feed") == feed) & F.array_contains("reasons", UNREAD_LINE))
            .select("source_file")
            .collect()
        }

    def record(self, feed: str, reasons: Mapping[str, str], txn: tuple[str, int] | None) -> dict[str, str]:
        """One quarantine row per file (by local path) and reason, unless quarantine holds it;
        returns the ones written."""
        if not reasons:
            return {}
        recorded = {
            (row.source_file, reason)
            for row in self.quarantine.read()
            .where((F.col("feed") == feed) & F.col("source_file").isin([f"file:{p}" for p in reasons]))
            .select("source_file", "reasons")
            .collect()
            for reason in row.reasons
        }
        new = {path: reason for path, reason in reasons.items() if (f"file:{path}", reason) not in recorded}
        now = datetime.now(UTC)
        rows = [
            {
                "feed": feed,
                "reasons": [reason],
                "raw": None,
                "source_file": f"file:{path}",
                "ingested_at": now,
                "quarantined_at": now,
            }
            for path, reason in new.items()
        ]
        if rows:
            self.quarantine.append(driver_rows(QUARANTINE_SCHEMA, rows), txn=txn)
        return new
