"""Landing zone -> bronze -> silver (+ quarantine), for nightly runs and streaming micro-batches alike.

Usage::

    from medallion.ingest import Ingestor

    ingestor = Ingestor(settings, spark)
    report = ingestor.run_batch()          # whatever landed since the last run
    query = ingestor.start_stream()        # the same, continuously, exactly-once

Both paths call :meth:`Ingestor.process` with a DataFrame of landed lines: bronze gets every
line, silver the valid first arrivals, quarantine the rest with reasons. Each table write is
keyed by ``(app id, batch id)``, so a replayed batch writes nothing twice.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, Observation, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.util import inheritable_thread_target

from medallion.bronze import read_kafka, read_landing, to_bronze
from medallion.config import Settings
from medallion.expectations import ExpectationFailed, declared, fail_if_broken, validate
from medallion.observation import observed
from medallion.schemas import BRONZE_SCHEMA, QUARANTINE_SCHEMA, SILVER_EVENTS_SCHEMA, SILVER_LABELS_SCHEMA
from medallion.silver import ParsedFeed, dedupe_events, parse_events, parse_labels
from medallion.spark import session_conf
from medallion.streaming.compaction import Compaction
from medallion.tables import Lakehouse, Table
from medallion.tables.table import may_match

FEEDS = ("events", "labels")

# At most this many lines in a batch: processed in one partition after parsing (see process).
ONE_PARTITION_ROWS = 50_000

# How far a file's modification time (the file system's clock) may run ahead of the driver's.
CLOCK_SKEW = timedelta(minutes=10)

# Spark's cache gathers statistics for every compression scheme over every value it stores.
# The parsed rows are read back twice and then dropped: compressing them cost more than it
# saved (2M events parsed and cached in 9.4 s uncompressed, 12.9 s compressed).
UNCOMPRESSED_CACHE = {"spark.sql.inMemoryColumnarStorage.compressed": "false"}


@dataclass
class FeedCounts:
    """What one batch of one feed did.

    ``bronze == silver + quarantined + duplicates + dropped`` always holds; ``expectations``
    counts the rows that broke each declared expectation, whatever its action.
    """

    feed: str
    files: int = 0
    bronze: int = 0
    silver: int = 0
    quarantined: int = 0
    duplicates: int = 0
    dropped: int = 0
    expectations: dict[str, int] = field(default_factory=dict)
    skipped_replay: bool = False

    def add(self, other: FeedCounts) -> None:
        self.files += other.files
        self.bronze += other.bronze
        self.silver += other.silver
        self.quarantined += other.quarantined
        self.duplicates += other.duplicates
        self.dropped += other.dropped
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


def _listed_files(landed: DataFrame) -> list[str]:
    """The files a batch read of landed lines lists, named as ``_metadata.file_path`` names them.

    Empty for a streaming micro-batch (its ``inputFiles`` is empty): :meth:`Ingestor.process`
    then takes them from the batch's summary, without a job of their own.
    """
    # Spark lists local files as file:///a/b but names them file:/a/b in _metadata.
    return [
        "file:/" + uri[len("file:///") :] if uri.startswith("file:///") else uri
        for uri in landed.inputFiles()
    ]


def _local_path(uri: str) -> str:
    """``file:/a/b`` or ``file:///a/b`` (how Spark names a file) -> ``/a/b``."""
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path) if uri.startswith("file:") else uri


class Ingestor:
    """Owns the bronze and silver tables of both feeds and moves landed lines through them."""

    def __init__(self, settings: Settings, spark: SparkSession):
        self.settings = settings
        self.spark = spark
        self.lake = Lakehouse(settings, spark)
        self.bronze = {
            "events": self.lake.create("bronze", "events", BRONZE_SCHEMA),
            "labels": self.lake.create("bronze", "labels", BRONZE_SCHEMA),
        }
        self.silver = {
            "events": self.lake.create("silver", "events", SILVER_EVENTS_SCHEMA, partition_by=["event_date"]),
            "labels": self.lake.create("silver", "labels", SILVER_LABELS_SCHEMA),
        }
        self.quarantine: Table = self.lake.create(
            "silver", "quarantine", QUARANTINE_SCHEMA, partition_by=["feed"]
        )
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
        files: Sequence[str] | None = None,
        landed_times: bool = False,
        exclusive: bool = False,
    ) -> IngestedBatch:
        """Write one batch of landed lines (``raw``, ``source_file``) through bronze into silver.

        Idempotent on ``(app_id, batch_id)``: every table skips a txn it already holds, and a
        batch replayed after a crash recomputes the same silver rows (it recognises its own
        files in bronze), so the caller can still score them. ``count_silver=False`` is for a
        caller that goes on to use the silver rows (the stream scores each one): they are
        cached, and the caller counts them and calls :meth:`IngestedBatch.counted`. Otherwise
        they are counted while written and not cached. ``files``: the files the batch came
        from, if the caller knows them (a batch read lists them itself; a micro-batch's come
        with its counts). ``landed_times``: also report when each file landed
        (:attr:`IngestedBatch.landed_us`, from the lines' ``landed_at``) in the same job. A
        ``fail`` expectation that any row breaks stops the batch before it writes anything.
        ``exclusive``: the source hands this writer each record once and no other writer reads
        it (Kafka offsets kept in the query's checkpoint), so there is no file ownership to
        settle. Call :meth:`IngestedBatch.release` when done with the returned rows.
        """
        writer = f"{app_id}:{feed}"
        txn = (writer, batch_id)
        listed = [] if exclusive else list(files) if files is not None else _listed_files(landed)
        if listed:
            landed = self._without(landed, self._ingested_elsewhere(feed, listed, writer, batch_id))
        # One ingest time for the batch, whichever query reads it (a replay gets a new one).
        # A stream's lines bring their own: the micro-batch's timestamp (see read_landing).
        ingested_at = datetime.now(UTC)
        carried = ["landed_at"] if landed_times else []
        parsed, summary, cached = self._parsed(feed, landed, batch_id, writer, ingested_at, carried)
        if not listed and summary.rows and not exclusive:
            # A micro-batch names its files only in its rows: they come with the summary, and
            # the rare batch holding files another query ingested first is parsed again without them.
            landed_since = (
                datetime.fromtimestamp(min(f.landed_us for f in summary["landed"]) / 1e6, UTC)
                if carried
                else None
            )
            elsewhere = self._ingested_elsewhere(feed, list(summary.files), writer, batch_id, landed_since)
            if elsewhere:
                cached.unpersist()
                landed = self._without(landed, elsewhere)
                parsed, summary, cached = self._parsed(feed, landed, batch_id, writer, ingested_at, carried)
        bronze_rows = self._bronze_rows(landed, batch_id, writer, ingested_at)
        counts = FeedCounts(feed, bronze=summary.rows)
        if counts.bronze == 0:
            cached.unpersist()
            return IngestedBatch(counts, None, [])
        counts.expectations = {rule.name: summary[f"broken_{rule.name}"] for rule in parsed.expectations}
        try:
            fail_if_broken(feed, parsed.expectations, counts.expectations)
        except ExpectationFailed:
            cached.unpersist()
            raise
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
        landed_us = {f.source_file: f.landed_us for f in summary["landed"]} if carried else {}
        event_dates = sorted(summary["event_dates"]) if feed == "events" else []
        if feed == "events":
            # Ids silver got from other files; this batch's own files may already be there on a replay.
            # A re-sent event carries its event_ts, so only the batch's event dates are looked
            # at: the semi-join on the partition column lets Spark prune the rest of silver.
            batch_keys = parsed.valid.select("event_id", "event_date").distinct()
            known_ids = (
                self.silver["events"]
                .read()
                .where(~F.col("source_file").isin(batch_files))
                .join(batch_keys, ["event_id", "event_date"], "left_semi")
                .select("event_id")
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
        ingested = IngestedBatch(counts, silver_rows, held, summary.valid, landed_us, event_dates)
        # The writer threads carry this thread's Spark job properties (a micro-batch's among them).
        inherited = inheritable_thread_target(landed.sparkSession)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="ingest-write") as writers:
            # The three writes are independent (each is keyed by the same txn): bronze and
            # quarantine go on beside silver. A micro-batch's writes are mostly driver-side
            # waits (planning, the log, the commit), which overlap where jobs would queue.
            # Bronze reads the landed lines again rather than caching them all: a text scan
            # is cheaper than holding every raw line in memory.
            bronze_written = writers.submit(
                inherited(self.bronze[feed].append),
                bronze_rows,
                txn=txn,
                expected_rows=counts.bronze,
            )
            quarantine_written = writers.submit(
                inherited(self.quarantine.append),
                quarantine_rows,
                txn=txn,
                expected_rows=counts.quarantined,
            )
            appended = self.silver[feed].append(silver_rows, txn=txn, expected_rows=summary.valid)
            if count_silver:
                figures = observed(counted) if appended else None  # a replay skips the write
                ingested.counted(figures["rows"] if figures else silver_rows.count())
            counts.skipped_replay = not bronze_written.result()
            quarantine_written.result()
        return ingested

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
    ) -> tuple[ParsedFeed, Row, DataFrame]:
        """The batch's lines parsed and cached; one row of figures: ``rows``, ``files``,
        ``event_dates`` (events only), ``landed`` ((source_file, landed_us) pairs, if
        ``landed_at`` is carried) and the counts of :meth:`ParsedFeed.summary_columns`; and
        the cached frame, to unpersist."""
        parse = parse_events if feed == "events" else parse_labels
        figures = [F.count("*").alias("rows"), F.collect_set("source_file").alias("files")]
        if feed == "events":
            figures.append(F.collect_set("event_date").alias("event_dates"))
        if carried:
            landed_us = F.struct("source_file", F.unix_micros("landed_at").alias("landed_us"))
            figures.append(F.collect_set(landed_us).alias("landed"))
        rules = self.expectations[feed]
        # (An expectation is checked against silver's columns: ingested_at is the one of them
        # that the lines below would lack.)
        if any("ingested_at" in rule.check for rule in rules):
            lines = self._bronze_rows(landed, batch_id, writer, ingested_at, carried)
        else:
            # A literal ingest time joins the rows after the cache. A value in a Spark plan is
            # compiled into its generated code: with it, the parse (a batch's largest code)
            # was compiled anew every micro-batch, and ran before the JIT had optimised it.
            own_time = ["ingested_at"] if "ingested_at" in landed.columns else []
            lines = landed.select("raw", "source_file", *own_time, *carried)
        # Cached once parsed: silver, quarantine and the counts read these rows. The cache is
        # built by the first action, so the conf covers that action, in the lines' own session
        # (a micro-batch runs in its query's clone of self.spark).
        with session_conf(lines.sparkSession, UNCOMPRESSED_CACHE):
            cached = parse(lines, rules).persist()
            parsed = cached
            if "ingested_at" not in lines.columns:
                ingested = F.lit(ingested_at).cast("timestamp")
                parsed = replace(cached, rows=cached.rows.withColumn("ingested_at", ingested))
            # One job for every count and the file list: per-batch jobs are the stream's latency.
            summary = parsed.rows.agg(*figures, *parsed.summary_columns()).first()
        return parsed, summary, cached.rows

    def _ingested_elsewhere(
        self,
        feed: str,
        files: Sequence[str],
        writer: str,
        batch_id: int,
        landed_since: datetime | None = None,
    ) -> list[str]:
        """Those of ``files`` bronze already holds from another writer or batch.

        A file lands in bronze once, whoever reads it first (the nightly run or the stream);
        the rows this very (writer, batch) committed before a crash do not count, so a replay
        rebuilds the same batch. Bronze is read only if the log's file statistics leave a
        file that may hold them (see :func:`_may_hold_elsewhere`; ``landed_since``: when a
        micro-batch's earliest file landed), and then for these files only, so parquet
        statistics skip the rest: the cost does not grow with bronze's age.
        """
        if not files:
            return []
        bronze = self.bronze[feed]
        stats = bronze.file_statistics(["source_file", "ingest_app", "ingested_at"])
        if stats is not None and not _may_hold_elsewhere(stats, files, writer, landed_since):
            return []
        return [
            row.source_file
            for row in bronze.read()
            .where(F.col("source_file").isin(list(files)))
            .where(~((F.col("ingest_app") == writer) & (F.col("batch_id") == batch_id)))
            .select("source_file")
            .distinct()
            .collect()
        ]

    @staticmethod
    def _without(landed: DataFrame, files: Sequence[str]) -> DataFrame:
        return landed.where(~F.col("source_file").isin(list(files))) if files else landed

    # ------------------------------------------------------------------ batch

    def new_files(self, feed: str) -> list[str]:
        """Landing files of ``feed`` that bronze has not seen: re-running ingests nothing twice."""
        landed = _landing_files(self.landing_folder(feed))
        if not landed:
            return []
        seen = {
            _local_path(row.source_file)
            for row in self.bronze[feed].read().select("source_file").distinct().toLocalIterator()
        }
        return [path for path in landed if path not in seen]

    def run_batch(self, on_step: Callable[[FeedCounts], None] | None = None) -> IngestReport:
        """Ingest every landing file not yet in bronze, for both feeds."""
        report = IngestReport()
        started = time.monotonic()
        for feed in FEEDS:
            files = self.new_files(feed)
            if not files:
                continue
            app_id = "ingest-batch"
            last = self.bronze[feed].last_txn_version(f"{app_id}:{feed}")
            batch_id = 0 if last is None else last + 1
            landed = read_landing(self.spark, files)
            batch = self.process(feed, landed, app_id, batch_id)
            batch.release()
            report.feeds[feed].add(batch.counts)
            if on_step:
                on_step(batch.counts)
        report.seconds = time.monotonic() - started
        return report

    # ------------------------------------------------------------------ stream

    def _landing_stream(self, feed: str) -> DataFrame:
        if not self.settings.storage.is_uri:  # an object store has no folders to make
            Path(self.landing_folder(feed)).mkdir(parents=True, exist_ok=True)
        return read_landing(
            self.spark,
            self.landing_folder(feed),
            stream=True,
            max_files_per_trigger=self.settings.stream.max_files_per_trigger,
        )

    def start_stream(
        self, trigger: dict[str, object], query_name: str = "ingest", await_termination: bool = False
    ):
        """Start one streaming query per feed; each micro-batch goes through :meth:`process`."""
        queries = []
        for feed in FEEDS:
            name = f"{query_name}_{feed}"
            compaction = Compaction(
                [self.bronze[feed], self.silver[feed], self.quarantine], self.settings.stream.compact_every
            )
            checkpoint = self.settings.storage.checkpoint_path(name)
            from_kafka = feed == "events" and self.settings.stream.source == "kafka"
            landed = landed_stream(self.spark, self.settings) if from_kafka else self._landing_stream(feed)

            def write_batch(
                batch: DataFrame,
                batch_id: int,
                feed: str = feed,
                checkpoint: str = checkpoint,
                compaction: Compaction = compaction,
            ) -> None:
                app_id = f"stream:{checkpoint_query_id(checkpoint)}"
                kafka = feed == "events" and self.settings.stream.source == "kafka"
                self.process(feed, batch, app_id, batch_id, landed_times=not kafka, exclusive=kafka).release()
                compaction.after(batch_id)

            query = (
                landed.writeStream.queryName(name)
                .option("checkpointLocation", checkpoint)
                .foreachBatch(write_batch)
                .trigger(**trigger)
                .start()
            )
            queries.append(query)
        if await_termination:
            for query in queries:
                query.awaitTermination()
        return queries


def _may_hold_elsewhere(
    stats: pa.Table, files: Sequence[str], writer: str, landed_since: datetime | None
) -> bool:
    """Whether some bronze file, by its statistics, may hold one of ``files`` from another writer.

    Ruled out: a file whose ``source_file`` bounds enclose none of ``files``. For a stream's
    micro-batch (``landed_since``: when its earliest file landed) also a file only ``writer``
    wrote (the file source hands a query each file once; its own replayed batch does not
    count) and a file ingested before ``landed_since`` less :data:`CLOCK_SKEW` (a writer
    stamps ingested_at after listing the files it reads).
    """
    import pyarrow.compute as pc

    if stats.num_rows == 0:
        return False
    candidates = may_match(stats, "source_file", files)
    if landed_since is None:
        return bool(candidates.any())
    low, high = stats.column("min.ingest_app"), stats.column("max.ingest_app")
    if not pa.types.is_null(low.type):
        own = pc.fill_null(pc.and_(pc.equal(low, writer), pc.equal(high, writer)), False)
        candidates &= ~own.to_numpy(zero_copy_only=False)
    newest = stats.column("max.ingested_at")
    if not pa.types.is_null(newest.type):
        since = pa.scalar(landed_since - CLOCK_SKEW, pa.timestamp("us", "UTC")).cast(newest.type)
        recent = pc.fill_null(pc.greater_equal(newest, since), True)
        candidates &= recent.to_numpy(zero_copy_only=False)
    return bool(candidates.any())


def landed_stream(spark: SparkSession, settings: Settings) -> DataFrame:
    """The events the stream reads, as landed lines: the landing folder (``stream.source:
    files``) or the Kafka topic (``stream.source: kafka``)."""
    stream = settings.stream
    if stream.source == "kafka":
        from medallion.streaming.plan import kafka_options

        kafka = stream.kafka
        return read_kafka(
            spark, kafka_options(settings), kafka.topic, kafka.starting_offsets, kafka.max_offsets_per_trigger
        )
    if not settings.storage.is_uri:  # an object store has no folders to make
        Path(settings.storage.landing_events).mkdir(parents=True, exist_ok=True)
    return read_landing(
        spark,
        settings.storage.landing_events,
        stream=True,
        max_files_per_trigger=stream.max_files_per_trigger,
    )


def checkpoint_query_id(checkpoint: str) -> str:
    """The query id Spark keeps in a checkpoint: stable across restarts, new for a new checkpoint.

    Keying exactly-once writes on it (not on the query name) means a deleted checkpoint
    starts a new txn sequence instead of silently skipping batch ids it thinks it has seen.
    """
    with open(os.path.join(checkpoint, "metadata")) as handle:
        return json.load(handle)["id"]
