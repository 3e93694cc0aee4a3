"""Bronze: every landed line as received, with where and when it arrived. Nothing is dropped.

Usage::

    landed = read_landing(spark, settings.storage.landing_events)             # batch
    landed = read_landing(spark, folder, stream=True, max_files_per_trigger=10)  # stream
    landed = read_kafka(spark, {"kafka.bootstrap.servers": "127.0.0.1:9092"}, "events")
    bronze_rows = to_bronze(landed, batch_id=7)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from medallion.schemas import UNREAD_LINE_BYTES


def read_landing(
    spark: SparkSession,
    paths: str | Sequence[str],
    stream: bool = False,
    max_files_per_trigger: int | None = None,
    max_bytes_per_trigger: int | None = None,
) -> DataFrame:
    """One row per landed line: ``raw``, ``source_file``, ``landed_at`` (the file's mtime) and
    ``file_size`` (its length when listed: a file still being written has grown since).

    A line over :data:`~medallion.schemas.UNREAD_LINE_BYTES` is skipped unread (see
    :func:`unread_bytes`). A folder or a list of files for batch reads; a folder for streams. Files whose names
    start with ``.`` or ``_`` are still being written and are skipped (Spark's file source
    ignores them), which is why the generator publishes by rename. A stream's lines also
    carry ``ingested_at``: their micro-batch's timestamp, which a replay of the batch keeps
    (Spark records it with the batch's offsets).
    """
    # A file deleted after it was listed is skipped, not a failure: a stream would otherwise
    # fail the same micro-batch on every replay. (The night records it: see Ingestor.run_batch.)
    # Hadoop's line reader skips a line past this length, consuming it without holding it.
    skip_longer = {"mapreduce.input.linerecordreader.line.maxlength": str(UNREAD_LINE_BYTES)}
    if stream:
        reader = spark.readStream.format("text").option("ignoreMissingFiles", "true").options(**skip_longer)
        # Spark takes one bound or the other. Bytes keep a batch of a few huge files small, and
        # so the rows the driver holds; a file count, when asked for, goes first.
        if max_files_per_trigger:
            reader = reader.option("maxFilesPerTrigger", max_files_per_trigger)
        elif max_bytes_per_trigger:
            reader = reader.option("maxBytesPerTrigger", max_bytes_per_trigger)
        lines = reader.load(paths if isinstance(paths, str) else paths[0])
    else:
        reader = spark.read.format("text").option("ignoreMissingFiles", "true").options(**skip_longer)
        lines = reader.load(paths if isinstance(paths, str) else list(paths))
    columns = [
        F.col("value").alias("raw"),
        F.col("_metadata.file_path").alias("source_file"),
        F.col("_metadata.file_modification_time").alias("landed_at"),
        F.col("_metadata.file_size").alias("file_size"),
    ]
    if stream:
        # Spark gives each micro-batch this as a value of the batch, not a literal in the
        # plans built on it: those compile to the same code every batch (see to_bronze).
        columns.append(F.current_timestamp().alias("ingested_at"))
    return lines.select(*columns)


def unread_bytes(file_size: int, line_bytes: int, lines: int, files: int = 1) -> int:
    """Bytes of a file (or files) that no line read accounts for, with the benefit of the doubt:
    each line may have ended in CR LF and each file begun with a byte-order mark. At least
    :data:`~medallion.schemas.UNREAD_LINE_BYTES` / 2 means the reader skipped a line (one it
    skips is longer than that, and a few hundred thousand CRs are not).

    ``line_bytes`` sums each line's UTF-8 length plus its newline."""
    return file_size - line_bytes - lines - 3 * files


KAFKA_COLUMNS = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp")


def local_path(source_file: str) -> str:
    """A landing line's ``source_file`` as Spark names it (``file:/a/b``, ``file:///a/b``) -> ``/a/b``."""
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(source_file).path) if source_file.startswith("file:") else source_file


def read_kafka(
    spark: SparkSession,
    options: Mapping[str, str],
    topic: str,
    starting_offsets: str = "earliest",
    max_offsets_per_trigger: int | None = None,
    continuous: bool = False,
) -> DataFrame:
    """A Kafka topic's records as landed lines: each record's value is one line.

    ``source_file`` names the record's partition (``kafka://<topic>/<partition>``); the
    record's own coordinates and timestamp go to bronze's ``kafka_*`` columns. ``options``:
    ``kafka.bootstrap.servers`` and any other ``kafka.`` client option (security, SASL).
    ``ingested_at`` is when the micro-batch ran; ``continuous`` (a mode that has no clock in
    its plan) takes the broker's timestamp of the record instead.
    """
    reader = spark.readStream.format("kafka").options(**options).option("subscribe", topic)
    reader = reader.option("startingOffsets", starting_offsets).option("failOnDataLoss", "true")
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", max_offsets_per_trigger)
    records = reader.load()
    return records.select(
        F.col("value").cast("string").alias("raw"),
        F.concat(F.lit("kafka://"), "topic", F.lit("/"), F.col("partition").cast("string")).alias(
            "source_file"
        ),
        (F.col("timestamp") if continuous else F.current_timestamp()).alias("ingested_at"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
    )


def to_bronze(
    landed: DataFrame,
    batch_id: int | Column,
    ingested_at: datetime | None = None,
    carry: Sequence[str] = (),
) -> DataFrame:
    """Landed lines as bronze rows: ``raw``, ``source_file``, ``ingested_at``, ``batch_id``.

    Lines that carry ``ingested_at`` (a stream's) keep it. Otherwise pass ``ingested_at`` when
    several queries read the same batch: a literal time is the same in each of them, where
    ``current_timestamp()`` is fixed per query. ``carry``: columns of ``landed`` to keep after
    the bronze ones (such as ``landed_at``), for the caller's use.
    """
    batch = batch_id if isinstance(batch_id, Column) else F.lit(batch_id)
    if "ingested_at" in landed.columns:
        when = F.col("ingested_at")
    else:
        when = F.current_timestamp() if ingested_at is None else F.lit(ingested_at).cast("timestamp")
    kafka = [
        F.col(name) if name in landed.columns else F.lit(None).cast(kind).alias(name)
        for name, kind in zip(KAFKA_COLUMNS, ("string", "int", "long", "timestamp"), strict=True)
    ]
    return landed.select(
        "raw",
        "source_file",
        when.alias("ingested_at"),
        batch.cast("long").alias("batch_id"),
        *kafka,
        *carry,
    )
