"""Landing zone -> bronze -> silver (+ quarantine), for nightly runs and streaming micro-batches alike.

Usage::

    from medallion.ingest import Ingestor

    ingestor = Ingestor(settings, spark)
    report = ingestor.run_batch()          # whatever landed since the last run
    # the same, continuously, exactly-once: medallion.streaming.landing.start_ingest(ingestor, trigger)

Both paths call :meth:`Ingestor.process` with a DataFrame of landed lines: bronze gets every
line, silver the valid first arrivals, quarantine the rest with reasons. Each table write is
keyed by ``(app id, batch id)``, so a replayed batch writes nothing twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pyspark.sql import DataFrame, Observation, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.util import inheritable_thread_target

from medallion import failpoints
from medallion.bronze import KAFKA_COLUMNS, local_path, read_landing, to_bronze, unread_bytes
from medallion.catalog import BRONZE, QUARANTINE, SILVER
from medallion.claims import Claim, ClaimLedger
from medallion.config import Settings
from medallion.expectations import ExpectationFailed, declared, fail_if_broken, validate
from medallion.observation import observed
from medallion.schemas import (
    BRONZE_SCHEMA,
    QUARANTINE_SCHEMA,
    UNREAD_LINE_BYTES,
)
from medallion.silver import ParsedFeed, dedupe_events, parse_events, parse_labels
from medallion.spark import session_conf
from medallion.tables import Lakehouse, Table
from medallion.tables.arrow import driver_rows

FEEDS = ("events", "labels")
MISSING_FILE = "missing file: deleted after it was listed, before it was read"
UNREAD_LINE = f"unread line: over {UNREAD_LINE_BYTES} bytes, skipped by the reader unparsed"

# The app ids of the night's ingest and of bronze rows written before claims existed.
BATCH_APP = "ingest-batch"
ADOPTED_APP = "before-claims"

# At most this many lines in a batch: processed in one partition after parsing (see process).
ONE_PARTITION_ROWS = 50_000

# Spark's cache gathers statistics for every compression scheme over every value it stores.
# The parsed rows are read back twice and then dropped: compressing them cost more than it
# saved (2M events parsed and cached in 9.4 s uncompressed, 12.9 s compressed).
UNCOMPRESSED_CACHE = {"spark.sql.inMemoryColumnarStorage.compressed": "false"}


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
    """The outcome of :meth:`Ingestor.process`: counts, and the batch's silver rows."""

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


def _landing_files(folder: str) -> list[str]:
    """Complete landing files: writers publish with a rename, hidden names are still being written."""
    if not os.path.isdir(folder):
        return []
    return sorted(
        str(Path(folder, name).resolve())
        for name in os.listdir(folder)
        if not name.startswith((".", "_")) and os.path.isfile(os.path.join(folder, name))
    )


def _committed_then(point: str, append: Callable[..., bool]) -> Callable[..., bool]:
    """``append``, then the failpoint ``point`` (see :mod:`medallion.failpoints`)."""

    def appended(*args, **kwargs) -> bool:
        written = append(*args, **kwargs)
        failpoints.reached(point)
        return written

    return appended


def _last_txn(table: Table, writer: str) -> int:
    """The writer's last committed batch id in ``table``; -1 if none."""
    last = table.last_txn_version(writer)
    return -1 if last is None else last


class Ingestor:
    """Owns the bronze and silver tables of both feeds and moves landed lines through them."""

    def __init__(self, settings: Settings, spark: SparkSession):
        self.settings = settings
        self.spark = spark
        self.lake = Lakehouse(settings, spark)
        self.bronze = {feed: self.lake.open(spec) for feed, spec in BRONZE.items()}
        self.silver = {feed: self.lake.open(spec) for feed, spec in SILVER.items()}
        self.quarantine: Table = self.lake.open(QUARANTINE)
        self._ledgers: dict[str, ClaimLedger] = {}
        self.expectations = {feed: declared(settings, feed) for feed in FEEDS}
        for feed, rules in self.expectations.items():
            validate(spark, feed, rules, self.silver[feed].schema)

    def landing_folder(self, feed: str) -> str:
        storage = self.settings.storage
        return storage.landing_events if feed == "events" else storage.landing_labels

    # ------------------------------------------------------------------ the shared step

    def process(
        self,
        feed: str,
        landed: DataFrame,
        app_id: str,
        batch_id: int,
        count_silver: bool = True,
        landed_times: bool = False,
        exclusive: bool = False,
    ) -> IngestedBatch:
        """Write one batch of landed lines (``raw``, ``source_file``) through bronze into silver.

        The lines are read once: parsed and cached, and bronze, silver and quarantine are all
        built from that one read. Unless ``exclusive``, the batch then claims its files
        (:mod:`medallion.claims`): it keeps only those no other batch owns and that did not
        change while read (a file still being written is left for a later batch). The claim
        is committed before any table is written.

        Idempotent on ``(app_id, batch_id)``: every table skips a txn it already holds, and a
        batch replayed after a crash gets its own claim back and recomputes the same silver
        rows, so the caller can still score them. ``count_silver=False`` is for a caller
        that goes on to use the silver rows (the stream scores each one): they are cached,
        and the caller counts them and calls :meth:`IngestedBatch.counted`. Otherwise they
        are counted while written and not cached. ``landed_times``: also report when each
        file landed (:attr:`IngestedBatch.landed_us`, from the lines' ``landed_at``) in the
        same job. A ``fail`` expectation that any row breaks stops the batch before it
        writes anything. ``exclusive``: the source hands this writer each record once and
        no other writer reads it (Kafka offsets kept in the query's checkpoint), so there is
        no file ownership to settle. Call :meth:`IngestedBatch.release` when done with the
        returned rows.
        """
        writer = f"{app_id}:{feed}"
        txn = (writer, batch_id)
        # One ingest time for the batch, whichever query reads it (a replay gets a new one).
        # A stream's lines bring their own: the micro-batch's timestamp (see read_landing).
        ingested_at = datetime.now(UTC)
        carried = ["landed_at"] if landed_times else []
        claiming = not exclusive
        parsed, summary, cached = self._parsed(feed, landed, batch_id, writer, ingested_at, carried, claiming)
        files_read = [local_path(path) for path in summary.files] if summary.rows else []
        owned_sizes: dict[str, int | None] = {}
        if claiming and summary.rows:
            # Each file read, with its size when listed (None where the lines carry no size).
            read = dict.fromkeys(summary.files)
            read.update({f.source_file: f.file_size for f in summary.asDict().get("read", [])})
            owned = self._claim(feed, writer, batch_id, read)
            failpoints.reached("ingest.claimed")
            if set(owned) != set(read):
                # Files another batch owns, or that changed while read: this batch leaves them.
                parsed = replace(parsed, rows=parsed.rows.where(F.col("source_file").isin(owned)))
                summary = self._summary(feed, parsed, carried, sizes=False)
            owned_sizes = {path: read[path] for path in owned}
        counts = FeedCounts(feed, bronze=summary.rows)
        if summary.rows and owned_sizes:
            counts.unread = self._record_unread(
                feed, parsed, summary, owned_sizes, (f"{writer}:unread", batch_id)
            )
        if counts.bronze == 0:
            cached.unpersist()
            return IngestedBatch(counts, None, [], files_read=files_read)
        counts.expectations = {rule.name: summary[f"broken_{rule.name}"] for rule in parsed.expectations}
        try:
            fail_if_broken(feed, parsed.expectations, counts.expectations)
        except ExpectationFailed:
            cached.unpersist()
            raise
        # Bronze from the cached read, as received: the rows silver and quarantine come from.
        bronze_rows = self._bronze_rows(parsed.rows, batch_id, writer, ingested_at)
        if counts.bronze <= ONE_PARTITION_ROWS:
            # A small batch (a stream's micro-batch) goes on in one partition: every shuffle
            # (deduplication, the profile join) would be a Spark stage of its own for a few
            # thousand rows. Coalescing the cached rows moves no data.
            parsed = replace(parsed, rows=parsed.rows.coalesce(1))
            bronze_rows = bronze_rows.coalesce(1)
        batch_files = list(summary.files)
        counts.files = len(batch_files)
        counts.quarantined = summary.quarantined
        counts.dropped = summary.dropped
        counts.blank = summary.blank
        landed_us = {f.source_file: f.landed_us for f in summary["landed"]} if carried else {}
        event_dates = sorted(summary["event_dates"]) if feed == "events" else []
        if feed == "events" and event_dates:
            # Ids silver got from other files; this batch's own files may already be there on a replay.
            # The event id is the key, whatever timestamp a re-sent event carries; silver is
            # looked up only within ingest.dedupe_days of the batch's event dates, a range
            # of the partition column, so Spark prunes the rest of silver.
            horizon = timedelta(days=self.settings.ingest.dedupe_days)
            near = F.col("event_date").between(
                F.lit(event_dates[0] - horizon), F.lit(event_dates[-1] + horizon)
            )
            known_ids = (
                self.silver["events"]
                .read()
                .where(near & ~F.col("source_file").isin(batch_files))
                .select("event_id")
                .join(parsed.valid.select("event_id").distinct(), "event_id", "left_semi")
            )
            silver_rows = dedupe_events(parsed.valid, existing_ids=known_ids).unique
        else:
            silver_rows = parsed.valid
        silver_rows = silver_rows.select(*self.silver[feed].schema.fieldNames())
        quarantine_rows = parsed.quarantine.select(*QUARANTINE_SCHEMA.fieldNames())
        held = [cached]
        if count_silver:
            # Counted while written: the rows are not needed again, so they are not cached.
            counted = Observation()
            silver_rows = silver_rows.observe(counted, F.count(F.lit(1)).alias("rows"))
        else:
            silver_rows = silver_rows.persist()  # the caller scores them
            held.append(silver_rows)
        ingested = IngestedBatch(counts, silver_rows, held, summary.valid, landed_us, event_dates, files_read)
        # The writer threads carry this thread's Spark job properties (a micro-batch's among them).
        inherited = inheritable_thread_target(landed.sparkSession)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="ingest-write") as writers:
            # The three writes are independent (each is keyed by the same txn): bronze and
            # quarantine go on beside silver. A micro-batch's writes are mostly driver-side
            # waits (planning, the log, the commit), which overlap where jobs would queue.
            bronze_written = writers.submit(
                inherited(_committed_then("ingest.bronze", self.bronze[feed].append)),
                bronze_rows,
                txn=txn,
                expected_rows=counts.bronze,
            )
            quarantine_written = writers.submit(
                inherited(_committed_then("ingest.quarantine", self.quarantine.append)),
                quarantine_rows,
                txn=txn,
                expected_rows=counts.quarantined,
            )
            appended = self.silver[feed].append(silver_rows, txn=txn, expected_rows=summary.valid)
            failpoints.reached("ingest.silver")
            if count_silver:
                figures = observed(counted) if appended else None  # a replay skips the write
                ingested.counted(figures["rows"] if figures else silver_rows.count())
            counts.skipped_replay = not bronze_written.result()
            quarantine_written.result()
        return ingested

    def _ledger(self, feed: str) -> ClaimLedger:
        if feed not in self._ledgers:
            self._ledgers[feed] = ClaimLedger(self.settings.storage.claims_path(feed))
        return self._ledgers[feed]

    def _claim(self, feed: str, writer: str, batch_id: int, read: Mapping[str, int | None]) -> list[str]:
        """Claim for this batch the files it read that settled; returns those it owns.

        A replayed batch gets its first claim back, so it keeps exactly the files it kept then.
        """
        settled = [path for path, size in read.items() if self._settled(path, size)]
        claim = self._ledger(feed).claim(writer, batch_id, settled)
        return [path for path in claim.files if path in read]

    def _settled(self, source_file: str, listed_size: int | None) -> bool:
        """Whether a file was complete when read: the same size now, and unchanged for
        ``ingest.settle_seconds``. A file gone since was read whole at listing (Spark reads
        the length it listed), so it counts as complete."""
        if not source_file.startswith("file:") or listed_size is None:
            return True  # an object store publishes a file whole; Kafka records are whole
        try:
            now = os.stat(local_path(source_file))
        except FileNotFoundError:
            return True
        unchanged_for = time.time() - now.st_mtime
        return now.st_size == listed_size and unchanged_for >= self.settings.ingest.settle_seconds

    def _bronze_rows(
        self,
        landed: DataFrame,
        batch_id: int,
        writer: str,
        ingested_at: datetime,
        carried: Sequence[str] = (),
    ) -> DataFrame:
        return (
            to_bronze(landed, batch_id, ingested_at=ingested_at, carry=carried)
            .withColumn("ingest_app", F.lit(writer))
            .select(*BRONZE_SCHEMA.fieldNames(), *carried)
        )

    def _parsed(
        self,
        feed: str,
        landed: DataFrame,
        batch_id: int,
        writer: str,
        ingested_at: datetime,
        carried: Sequence[str] = (),
        sizes: bool = False,
    ) -> tuple[ParsedFeed, Row, DataFrame]:
        """The batch's lines parsed and cached (raw lines included: bronze is written from
        this cache), the batch's figures (see :meth:`_summary`) and the cached frame, to
        unpersist."""
        parse = parse_events if feed == "events" else parse_labels
        rules = self.expectations[feed]
        # (An expectation is checked against silver's columns: ingested_at is the one of them
        # that the lines below would lack.)
        if any("ingested_at" in rule.check for rule in rules):
            size = ["file_size"] if "file_size" in landed.columns else []
            lines = self._bronze_rows(landed, batch_id, writer, ingested_at, [*carried, *size])
        else:
            # A literal ingest time joins the rows after the cache. A value in a Spark plan is
            # compiled into its generated code: with it, the parse (a batch's largest code)
            # was compiled anew every micro-batch, and ran before the JIT had optimised it.
            own = [name for name in ("ingested_at", "file_size", *KAFKA_COLUMNS) if name in landed.columns]
            lines = landed.select("raw", "source_file", *own, *carried)
        # Cached once parsed: bronze, silver, quarantine and the counts read these rows. The
        # cache is built by the first action, so the conf covers that action, in the lines'
        # own session (a micro-batch runs in its query's clone of self.spark).
        with session_conf(lines.sparkSession, UNCOMPRESSED_CACHE):
            cached = parse(lines, rules).persist(keep_raw=True)
            parsed = cached
            if "ingested_at" not in lines.columns:
                ingested = F.lit(ingested_at).cast("timestamp")
                parsed = replace(cached, rows=cached.rows.withColumn("ingested_at", ingested))
            summary = self._summary(feed, parsed, carried, sizes and "file_size" in lines.columns)
        return parsed, summary, cached.rows

    @staticmethod
    def _summary(feed: str, parsed: ParsedFeed, carried: Sequence[str], sizes: bool) -> Row:
        """One row of figures, in one job (per-batch jobs are the stream's latency): ``rows``,
        ``files``, ``event_dates`` (events only), ``landed`` ((source_file, landed_us) pairs,
        if ``landed_at`` is carried), ``read`` ((source_file, file_size) pairs, only if ``sizes``)
        and the counts of :meth:`ParsedFeed.summary_columns`."""
        figures = [
            F.count("*").alias("rows"),
            F.collect_set("source_file").alias("files"),
            F.sum(F.octet_length("raw") + 1).alias("line_bytes"),
        ]
        if feed == "events":
            figures.append(F.collect_set("event_date").alias("event_dates"))
        if carried:
            landed_us = F.struct("source_file", F.unix_micros("landed_at").alias("landed_us"))
            figures.append(F.collect_set(landed_us).alias("landed"))
        if sizes:
            figures.append(F.collect_set(F.struct("source_file", "file_size")).alias("read"))
        return parsed.rows.agg(*figures, *parsed.summary_columns()).first()

    # ------------------------------------------------------------------ batch

    def new_files(self, feed: str) -> list[str]:
        """Landing files of ``feed`` that no batch owns yet: re-running ingests nothing twice."""
        landed = _landing_files(self.landing_folder(feed))
        if not landed:
            return []
        claimed = {local_path(path) for path in self._ledger(feed).refresh().claimed()}
        landed = [path for path in landed if path not in claimed]
        if not landed:
            return []
        # A file no line of which could be read is recorded once and not read again.
        unreadable = {
            local_path(row.source_file)
            for row in self.quarantine.read()
            .where((F.col("feed") == feed) & F.array_contains("reasons", UNREAD_LINE))
            .select("source_file")
            .collect()
        }
        return [path for path in landed if path not in unreadable]

    def run_batch(self, on_step: Callable[[FeedCounts], None] | None = None) -> IngestReport:
        """Ingest every landing file no batch owns yet, for both feeds.

        A batch this writer claimed but did not finish (a run killed between its commits)
        is finished first, from bronze's own rows if bronze committed it, else from the
        files its claim names; then the files that landed since form the next batch.
        """
        report = IngestReport()
        started = time.monotonic()
        for feed in FEEDS:
            writer = f"{BATCH_APP}:{feed}"
            ledger = self._ledger(feed).refresh()
            self._adopt_bronze(feed, ledger)
            batches = []
            unfinished = ledger.last(writer)
            if unfinished is not None and not self._written(feed, writer, unfinished.batch_id):
                batches.append((unfinished.batch_id, self._claimed_lines(feed, writer, unfinished)))
            files = [path for path in self.new_files(feed) if os.path.exists(path)]
            if files:
                batches.append((self._next_batch_id(feed, writer), read_landing(self.spark, files)))
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
        """For listed files that gave no line and that no batch owns, quarantine a record of
        why: the file vanished before it was read, or every line in it was too long to read
        (:data:`UNREAD_LINE_BYTES`). Returns (missing, unread). A file another writer (the
        night, or the stream) already recorded is not recorded again; ``txn`` keys the write
        for a caller that may replay it (a micro-batch)."""
        ledger = self._ledger(feed).refresh()
        unowned = [path for path in listed if ledger.owner(f"file:{path}") is None]
        found: dict[str, str] = {}
        for path in unowned:
            try:
                size = os.path.getsize(path)
            except FileNotFoundError:
                found[path] = MISSING_FILE
                continue
            if size >= UNREAD_LINE_BYTES // 2:
                found[path] = UNREAD_LINE
        recorded = self._quarantine_file_records(feed, found, txn)
        missing = sum(reason == MISSING_FILE for reason in recorded.values())
        return missing, len(recorded) - missing

    def _record_unread(
        self,
        feed: str,
        parsed: ParsedFeed,
        summary: Row,
        sizes: Mapping[str, int | None],
        txn: tuple[str, int],
    ) -> int:
        """Quarantine a record for each of the batch's files whose bytes its lines do not
        account for: the reader skipped a line there too long to read. One cheap test on the
        batch's totals; the files are looked at one by one only when it fails."""
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
        return len(self._quarantine_file_records(feed, found, txn))

    def _quarantine_file_records(
        self, feed: str, reasons: Mapping[str, str], txn: tuple[str, int] | None
    ) -> dict[str, str]:
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

    def _written(self, feed: str, writer: str, batch_id: int) -> bool:
        """Whether bronze, silver and quarantine all committed the writer's batch."""
        tables = (self.bronze[feed], self.silver[feed], self.quarantine)
        return all(_last_txn(table, writer) >= batch_id for table in tables)

    def _next_batch_id(self, feed: str, writer: str) -> int:
        last = self._ledger(feed).last(writer)
        # Bronze's txn counts too: a lakehouse ingested before claims existed carries on.
        before = max(-1 if last is None else last.batch_id, _last_txn(self.bronze[feed], writer))
        return before + 1

    def _claimed_lines(self, feed: str, writer: str, claim: Claim) -> DataFrame:
        """The lines of a claimed batch: bronze's own rows if bronze committed the batch
        (whatever the files hold now), else the claimed files that are still there."""
        bronze = self.bronze[feed]
        if _last_txn(bronze, writer) >= claim.batch_id:
            return (
                bronze.read()
                .where((F.col("ingest_app") == writer) & (F.col("batch_id") == claim.batch_id))
                .select("raw", "source_file", "ingested_at", *KAFKA_COLUMNS)
            )
        present = [path for path in map(local_path, claim.files) if os.path.exists(path)]
        if present:
            return read_landing(self.spark, present)
        return self.spark.createDataFrame([], "raw string, source_file string, landed_at timestamp")

    def _adopt_bronze(self, feed: str, ledger: ClaimLedger) -> None:
        """A lakehouse ingested before claims existed: bronze's files become one claim, once."""
        if ledger.claimed() or not self.lake.exists("bronze", feed):
            return
        files = [
            row.source_file for row in self.bronze[feed].read().select("source_file").distinct().collect()
        ]
        if files:
            ledger.claim(f"{ADOPTED_APP}:{feed}", 0, files)
