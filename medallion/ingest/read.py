"""One read of a batch's landed lines: parsed, cached, and summed up in one job.

Bronze, silver, quarantine and every count of a batch come from this one read, so bronze
can never hold a line the parse did not see (a file appended to in between, say).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from pyspark.sql import DataFrame, Row
from pyspark.sql import functions as F

from medallion.bronze import KAFKA_COLUMNS, to_bronze
from medallion.expectations import Expectation
from medallion.schemas import BRONZE_SCHEMA
from medallion.silver import ParsedFeed, parse_events, parse_labels
from medallion.spark import session_conf

# Spark's cache gathers statistics for every compression scheme over every value it stores.
# The parsed rows are read back twice and then dropped: compressing them costs more than it
# saves (see docs/performance.md, "Ingest").
UNCOMPRESSED_CACHE = {"spark.sql.inMemoryColumnarStorage.compressed": "false"}


@dataclass(frozen=True)
class BatchRead:
    """A batch's lines parsed (:attr:`parsed`, cached with their raw text), its figures
    (:attr:`summary`, see :func:`summarise`) and the cached frame to unpersist."""

    parsed: ParsedFeed
    summary: Row
    cached: DataFrame

    def keep_files(self, feed: str, files: Sequence[str], carried: Sequence[str]) -> BatchRead:
        """The read narrowed to the lines of ``files``, summed up again."""
        parsed = replace(self.parsed, rows=self.parsed.rows.where(F.col("source_file").isin(list(files))))
        return replace(self, parsed=parsed, summary=summarise(feed, parsed, carried, sizes=False))


def bronze_rows(
    landed: DataFrame, batch_id: int, writer: str, ingested_at: datetime, carried: Sequence[str] = ()
) -> DataFrame:
    """Landed lines as bronze rows of ``writer``'s batch (``carried`` columns kept after them)."""
    return (
        to_bronze(landed, batch_id, ingested_at=ingested_at, carry=carried)
        .withColumn("ingest_app", F.lit(writer))
        .select(*BRONZE_SCHEMA.fieldNames(), *carried)
    )


def read_batch(
    feed: str,
    landed: DataFrame,
    rules: Sequence[Expectation],
    batch_id: int,
    writer: str,
    ingested_at: datetime,
    carried: Sequence[str] = (),
    sizes: bool = False,
) -> BatchRead:
    """Parse and cache ``landed`` (raw lines included: bronze is written from this cache) and
    sum it up. ``sizes``: also collect each file's size when listed (for the claim)."""
    parse = parse_events if feed == "events" else parse_labels
    # (An expectation is checked against silver's columns: ingested_at is the one of them
    # that the lines below would lack.)
    if any("ingested_at" in rule.check for rule in rules):
        size = ["file_size"] if "file_size" in landed.columns else []
        lines = bronze_rows(landed, batch_id, writer, ingested_at, [*carried, *size])
    else:
        # A literal ingest time joins the rows after the cache. A value in a Spark plan is
        # compiled into its generated code: with it, the parse (a batch's largest code)
        # would be compiled anew every micro-batch, and run before the JIT had optimised it.
        own = [name for name in ("ingested_at", "file_size", *KAFKA_COLUMNS) if name in landed.columns]
        lines = landed.select("raw", "source_file", *own, *carried)
    lines = one_partition_if_small(lines)
    # Cached once parsed: bronze, silver, quarantine and the counts read these rows. The
    # cache is built by the first action, so the conf covers that action, in the lines'
    # own session (a micro-batch runs in its query's clone of the session).
    with session_conf(lines.sparkSession, UNCOMPRESSED_CACHE):
        cached = parse(lines, rules).persist(keep_raw=True)
        parsed = cached
        if "ingested_at" not in lines.columns:
            ingested = F.lit(ingested_at).cast("timestamp")
            parsed = replace(cached, rows=cached.rows.withColumn("ingested_at", ingested))
        summary = summarise(feed, parsed, carried, sizes and "file_size" in lines.columns)
    return BatchRead(parsed, summary, cached.rows)


#: Lines Spark estimates at most this size are read into one partition (see one_partition_if_small).
ONE_PARTITION_BYTES = 16 * 1024 * 1024


def one_partition_if_small(lines: DataFrame, max_bytes: int = ONE_PARTITION_BYTES) -> DataFrame:
    """``lines`` in one partition when Spark's estimate of their size (a file source's: the
    files' length) is at most ``max_bytes``; else as they are.

    A micro-batch of a few files would otherwise be parsed in a task per file, and every
    aggregate over it (its summary, the deduplication) would shuffle, each shuffle a stage
    and a job of its own for a few thousand rows. A source without a size (Kafka's) or a
    session without a JVM plan (Spark Connect) keeps its partitions.
    """
    try:
        estimate = int(lines._jdf.queryExecution().optimizedPlan().stats().sizeInBytes())
    except Exception:
        return lines
    return lines.coalesce(1) if 0 <= estimate <= max_bytes else lines


def summarise(feed: str, parsed: ParsedFeed, carried: Sequence[str], sizes: bool) -> Row:
    """One row of figures, in one job (per-batch jobs are the stream's latency): ``rows``,
    ``files``, ``line_bytes``, ``event_dates``, ``min_event_id`` and ``max_event_id`` (events
    only; over every parsed line, so they bound the valid lines' ids), ``landed`` ((source_file,
    landed_us) pairs, if ``landed_at`` is carried), ``read`` ((source_file, file_size) pairs,
    only if ``sizes``) and the counts of :meth:`ParsedFeed.summary_columns`."""
    aggregates = [
        F.count("*").alias("rows"),
        F.collect_set("source_file").alias("files"),
        F.sum(F.octet_length("raw") + 1).alias("line_bytes"),
    ]
    if feed == "events":
        aggregates.append(F.collect_set("event_date").alias("event_dates"))
        aggregates += [F.min("event_id").alias("min_event_id"), F.max("event_id").alias("max_event_id")]
    if carried:
        landed_us = F.struct("source_file", F.unix_micros("landed_at").alias("landed_us"))
        aggregates.append(F.collect_set(landed_us).alias("landed"))
    if sizes:
        aggregates.append(F.collect_set(F.struct("source_file", "file_size")).alias("read"))
    return parsed.rows.agg(*aggregates, *parsed.summary_columns()).first()
