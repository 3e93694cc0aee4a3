"""The Ingestor: one batch of landed lines through bronze into silver (+ quarantine).

Both the night (:meth:`Ingestor.run_batch`) and the streams (each micro-batch, see
:mod:`medallion.streaming.landing` and the speed layer) call :meth:`Ingestor.process`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.util import inheritable_thread_target

from medallion import failpoints
from medallion.bronze import local_path, read_landing
from medallion.catalog import BRONZE, QUARANTINE, SILVER
from medallion.claims import ClaimLedger
from medallion.config import Settings
from medallion.expectations import ExpectationFailed, declared, fail_if_broken, validate
from medallion.ingest import recovery
from medallion.ingest.counts import FEEDS, FeedCounts, IngestedBatch, IngestReport
from medallion.ingest.file_records import FileRecords, landing_files, settled
from medallion.ingest.read import BatchRead, bronze_rows, one_partition_if_small, read_batch
from medallion.observation import observed
from medallion.schemas import QUARANTINE_SCHEMA
from medallion.silver import dedupe_events
from medallion.tables import Lakehouse, Table

# The app id of the night's ingest.
BATCH_APP = "ingest-batch"

# At most this many lines in a batch: processed in one partition after parsing (see process).
ONE_PARTITION_ROWS = 50_000


def _committed_then(point: str, append: Callable[..., bool]) -> Callable[..., bool]:
    """``append``, then the failpoint ``point`` (see :mod:`medallion.failpoints`)."""

    def appended(*args, **kwargs) -> bool:
        written = append(*args, **kwargs)
        failpoints.reached(point)
        return written

    return appended


class Ingestor:
    """Owns the bronze and silver tables of both feeds and moves landed lines through them.

    Usage::

        ingestor = Ingestor(settings, spark)
        report = ingestor.run_batch()     # whatever landed since the last run, both feeds
        batch = ingestor.process("events", read_landing(spark, files), "my-app", 0)
        batch.release()
    """

    def __init__(self, settings: Settings, spark: SparkSession, lake: Lakehouse | None = None):
        self.settings = settings
        self.spark = spark
        self.lake = lake or Lakehouse(settings, spark)
        self.bronze = {feed: self.lake.open(spec) for feed, spec in BRONZE.items()}
        self.silver = {feed: self.lake.open(spec) for feed, spec in SILVER.items()}
        self.quarantine: Table = self.lake.open(QUARANTINE)
        self.file_records = FileRecords(self.quarantine)
        self._ledgers: dict[str, ClaimLedger] = {}
        self.expectations = {feed: declared(settings, feed) for feed in FEEDS}
        for feed, rules in self.expectations.items():
            validate(spark, feed, rules, self.silver[feed].schema)

    def landing_folder(self, feed: str) -> str:
        storage = self.settings.storage
        return storage.landing_events if feed == "events" else storage.landing_labels

    # ------------------------------------------------------------------ the shared step

    def process(
        self, feed: str, landed: DataFrame, app_id: str, batch_id: int, keep_silver: bool = False
    ) -> IngestedBatch:
        """Write one batch of landed lines (``raw``, ``source_file``) through bronze into silver.

        The lines are read once (:func:`~medallion.ingest.read.read_batch`): bronze, silver
        and quarantine are all built from that read. Lines from files then claim them
        (:mod:`medallion.claims`): the batch keeps only the files no other batch owns and
        that did not change while read (a file still being written is left for a later
        batch); the claim is committed before any table is written. Kafka records (lines
        with ``kafka_offset``) are handed to one query once by its checkpoint: no claim.
        Lines with ``landed_at`` also give when each file landed
        (:attr:`IngestedBatch.landed_us`), in the same job.

        Idempotent on ``(app_id, batch_id)``: every table skips a txn it already holds, and a
        batch replayed after a crash gets its own claim back and recomputes the same silver
        rows, so the caller can still score them. ``keep_silver`` is for a caller that goes
        on to use the silver rows (the stream scores each one): they are cached, and the
        caller counts them and calls :meth:`IngestedBatch.counted`. Otherwise they are
        counted while written. A ``fail`` expectation that any row breaks stops the batch
        before it writes anything. Call :meth:`IngestedBatch.release` when done.
        """
        writer = f"{app_id}:{feed}"
        # One ingest time for the batch, whichever query reads it (a replay gets a new one).
        # A stream's lines bring their own: the micro-batch's timestamp (see read_landing).
        ingested_at = datetime.now(UTC)
        carried = ["landed_at"] if "landed_at" in landed.columns else []
        claiming = "kafka_offset" not in landed.columns
        rules = self.expectations[feed]
        read = read_batch(feed, landed, rules, batch_id, writer, ingested_at, carried, sizes=claiming)
        files_read = [local_path(path) for path in read.summary.files] if read.summary.rows else []
        owned_sizes: Mapping[str, int | None] = {}
        if claiming and read.summary.rows:
            read, owned_sizes = self._keep_owned(feed, read, writer, batch_id, carried)
        summary = read.summary
        counts = FeedCounts(feed, bronze=summary.rows)
        if summary.rows and owned_sizes:
            unread_txn = (f"{writer}:unread", batch_id)
            counts.unread = self.file_records.unread(feed, read.parsed, summary, owned_sizes, unread_txn)
        if counts.bronze == 0:
            read.cached.unpersist()
            return IngestedBatch(counts, None, [], files_read=files_read)
        counts.expectations = {rule.name: summary[f"broken_{rule.name}"] for rule in read.parsed.expectations}
        try:
            fail_if_broken(feed, read.parsed.expectations, counts.expectations)
        except ExpectationFailed:
            read.cached.unpersist()
            raise
        counts.files, counts.quarantined = len(summary.files), summary.quarantined
        counts.dropped, counts.blank = summary.dropped, summary.blank
        event_dates = sorted(summary["event_dates"]) if feed == "events" else []
        batch = IngestedBatch(
            counts,
            None,
            [read.cached],
            summary.valid,
            {f.source_file: f.landed_us for f in summary["landed"]} if carried else {},
            event_dates,
            files_read,
        )
        self._write(feed, read, batch, (writer, batch_id), ingested_at, keep_silver)
        return batch

    def _keep_owned(
        self, feed: str, read: BatchRead, writer: str, batch_id: int, carried: Sequence[str]
    ) -> tuple[BatchRead, dict[str, int | None]]:
        """Claim the files the batch read that settled; the read narrowed to those it owns,
        with each owned file's size when listed (None where the lines carry no size).
        A replayed batch gets its first claim back, so it keeps exactly the files it kept then."""
        read_sizes: dict[str, int | None] = dict.fromkeys(read.summary.files)
        read_sizes.update({f.source_file: f.file_size for f in read.summary.asDict().get("read", [])})
        settle = self.settings.ingest.settle_seconds
        complete = [path for path, size in read_sizes.items() if settled(path, size, settle)]
        claim = self._ledger(feed).claim(writer, batch_id, complete)
        owned = [path for path in claim.files if path in read_sizes]
        failpoints.reached("ingest.claimed")
        if set(owned) != set(read_sizes):
            # Files another batch owns, or that changed while read: this batch leaves them.
            read = read.keep_files(feed, owned, carried)
        return read, {path: read_sizes[path] for path in owned}

    def _silver_rows(
        self,
        feed: str,
        read: BatchRead,
        event_dates: list[date],
        columns: Sequence[str],
        extra: Sequence[str] = (),
    ) -> DataFrame:
        """The batch's valid rows that silver does not hold yet, in silver's ``columns`` (then
        ``extra`` columns of the lines, for a caller that uses them)."""
        valid = read.parsed.valid
        if feed == "events" and event_dates:
            # Ids silver got from other files; this batch's own files may already be there on
            # a replay. The event id is the key, whatever timestamp a re-sent event carries;
            # silver is looked up only within ingest.dedupe_days of the batch's event dates, a
            # range of the partition column, so Spark prunes the rest of silver.
            horizon = timedelta(days=self.settings.ingest.dedupe_days)
            near = F.col("event_date").between(
                F.lit(event_dates[0] - horizon), F.lit(event_dates[-1] + horizon)
            )
            lowest, highest = read.summary["min_event_id"], read.summary["max_event_id"]
            # Only the files of silver whose ids may meet the batch's range are read: for ids
            # that grow with time, a stream's lookup reads the newest few files, not all.
            silver = (
                self.silver["events"].read_between("event_id", lowest, highest)
                if lowest is not None and highest is not None
                else self.silver["events"].read()
            )
            # A few files of silver in one partition: the join and the distinct below then
            # run in the scan's stage, not in stages (and jobs) of their own.
            silver = one_partition_if_small(silver)
            known_ids = (
                silver.where(near & ~F.col("source_file").isin(list(read.summary.files)))
                .select("event_id")
                .join(valid.select("event_id").distinct(), "event_id", "left_semi")
            )
            valid = dedupe_events(valid, existing_ids=known_ids).unique
        return valid.select(*columns, *extra)

    def _write(
        self,
        feed: str,
        read: BatchRead,
        batch: IngestedBatch,
        txn: tuple[str, int],
        ingested_at: datetime,
        keep_silver: bool,
    ) -> None:
        """Bronze, quarantine and silver of the batch, each keyed by ``txn``; sets
        ``batch.silver_rows`` (and, unless ``keep_silver``, its counts)."""
        writer, batch_id = txn
        parsed = read.parsed
        # Bronze from the cached read, as received: the rows silver and quarantine come from.
        bronze = bronze_rows(parsed.rows, batch_id, writer, ingested_at)
        if batch.counts.bronze <= ONE_PARTITION_ROWS:
            # A small batch (a stream's micro-batch) goes on in one partition: every shuffle
            # (deduplication, the profile join) would be a Spark stage of its own for a few
            # thousand rows. Coalescing the cached rows moves no data.
            read = replace(read, parsed=replace(parsed, rows=parsed.rows.coalesce(1)))
            bronze = bronze.coalesce(1)
        # A Kafka record's timestamp stays on the rows a caller scores: it is when the record
        # was produced, the start of the stream's latency (a file's is its landing time).
        extra = ["kafka_timestamp"] if keep_silver and "kafka_timestamp" in parsed.valid.columns else []
        columns = self.silver[feed].schema.fieldNames()
        silver = self._silver_rows(feed, read, batch.event_dates, columns, extra)
        quarantine = read.parsed.quarantine.select(*QUARANTINE_SCHEMA.fieldNames())
        if keep_silver:
            silver = silver.persist()  # the caller scores them
            batch.cached.append(silver)
        else:
            # Counted while written: the rows are not needed again, so they are not cached.
            counted = Observation()
            silver = silver.observe(counted, F.count(F.lit(1)).alias("rows"))
        batch.silver_rows = silver
        # The writer threads carry this thread's Spark job properties (a micro-batch's among them).
        inherited = inheritable_thread_target(parsed.rows.sparkSession)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="ingest-write") as writers:
            # The three writes are independent (each is keyed by the same txn): bronze and
            # quarantine go on beside silver. A micro-batch's writes are mostly driver-side
            # waits (planning, the log, the commit), which overlap where jobs would queue.
            bronze_written = writers.submit(
                inherited(_committed_then("ingest.bronze", self.bronze[feed].append)),
                bronze,
                txn=txn,
                expected_rows=batch.counts.bronze,
            )
            quarantine_written = writers.submit(
                inherited(_committed_then("ingest.quarantine", self.quarantine.append)),
                quarantine,
                txn=txn,
                expected_rows=batch.counts.quarantined,
            )
            written = silver.select(*columns) if extra else silver
            appended = self.silver[feed].append(written, txn=txn, expected_rows=batch.valid)
            failpoints.reached("ingest.silver")
            if not keep_silver:
                seen = observed(counted) if appended else None  # a replay skips the write
                batch.counted(seen["rows"] if seen else silver.count())
            batch.counts.skipped_replay = not bronze_written.result()
            quarantine_written.result()

    def _ledger(self, feed: str) -> ClaimLedger:
        if feed not in self._ledgers:
            self._ledgers[feed] = ClaimLedger(self.settings.storage.claims_path(feed))
        return self._ledgers[feed]

    # ------------------------------------------------------------------ the night

    def new_files(self, feed: str) -> list[str]:
        """Landing files of ``feed`` that no batch owns yet: re-running ingests nothing twice."""
        landed = landing_files(self.landing_folder(feed))
        if not landed:
            return []
        claimed = {local_path(path) for path in self._ledger(feed).refresh().claimed()}
        landed = [path for path in landed if path not in claimed]
        if not landed:
            return []
        # A file no line of which could be read is recorded once and not read again.
        unreadable = self.file_records.unreadable(feed)
        return [path for path in landed if path not in unreadable]

    def run_batch(self, on_step: Callable[[FeedCounts], None] | None = None) -> IngestReport:
        """Ingest every landing file no batch owns yet, for both feeds.

        A batch this writer claimed but did not finish (a run killed between its commits)
        is finished first (see :mod:`medallion.ingest.recovery`); then the files that landed
        since form the next batch.
        """
        report = IngestReport()
        started = time.monotonic()
        for feed in FEEDS:
            writer = f"{BATCH_APP}:{feed}"
            ledger = self._ledger(feed).refresh()
            recovery.adopt_bronze(
                ledger, self.bronze[feed] if self.lake.exists("bronze", feed) else None, feed
            )
            batches = []
            tables = (self.bronze[feed], self.silver[feed], self.quarantine)
            claim = recovery.unfinished(ledger, writer, tables)
            if claim is not None:
                batches.append(
                    (claim.batch_id, recovery.claimed_lines(self.spark, self.bronze[feed], writer, claim))
                )
            files = [path for path in self.new_files(feed) if os.path.exists(path)]
            if files:
                next_id = recovery.next_batch_id(ledger, self.bronze[feed], writer)
                batches.append((next_id, read_landing(self.spark, files)))
            lined: set[str] = set()
            for batch_id, landed in batches:
                batch = self.process(feed, landed, BATCH_APP, batch_id)
                batch.release()
                lined.update(batch.files_read)
                report.feeds[feed].add(batch.counts)
                report.event_dates.update(batch.event_dates)
                if on_step:
                    on_step(batch.counts)
            missing, unread = self.record_lineless(feed, [path for path in files if path not in lined])
            report.feeds[feed].missing += missing
            report.feeds[feed].unread += unread
        report.seconds = time.monotonic() - started
        return report

    def record_lineless(
        self, feed: str, listed: Sequence[str], txn: tuple[str, int] | None = None
    ) -> tuple[int, int]:
        """For listed files (local paths) that gave no line and that no batch owns, quarantine
        a record of why (see :meth:`FileRecords.lineless`). Returns (missing, unread). A file
        another writer (the night, or the stream) already recorded is not recorded again."""
        ledger = self._ledger(feed).refresh()
        return self.file_records.lineless(feed, listed, owner=ledger.owner, txn=txn)
