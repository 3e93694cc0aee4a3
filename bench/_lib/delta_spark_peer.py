"""The ingest a delta-spark user writes without medallion: the peer of ``bench/ingest.py``.

Usage::

    peer = TextbookIngest(spark, root)       # tables under root/bronze, root/silver, root/quarantine
    peer.run_batch({"events": [...], "labels": [...]})    # landing files of one batch
    peer.counts()                             # rows in each table

Per feed and batch, the textbook pipeline on delta-spark's own API:

- ``spark.read.text`` over the batch's files -> ``from_json`` with the typed landing schema,
  the parsed frame cached once (bronze, silver and quarantine all come from that one read);
- bronze: the raw lines with their file and ingest time, appended to a Delta table;
- silver: the valid rows; events ``dropDuplicates`` on the event id within the batch, then one
  Delta ``MERGE`` (``whenNotMatchedInsertAll`` on the event id) for duplicates of earlier
  batches, into a table partitioned by event date; labels are appended (corrections are new
  rows, as in medallion's silver);
- quarantine: the rows that fail, with their raw line, appended to one Delta table
  partitioned by feed.

The validity rules, the simple subset of medallion's silver checks (see :mod:`medallion.silver`):
the line is at most ``MAX_LINE_BYTES``; every field is present and of its type (a line that is
not JSON, is truncated, lacks a field, has a non-numeric amount or an unparseable timestamp
parses to a null field); ``amount >= 0`` (medallion quarantines a negative amount, not a zero
one); ``currency``, ``channel``, ``country`` and ``merchant_category`` in their vocabularies.
What it leaves out: reasons per row, blank-line and byte-order-mark handling, first-arrival
order among duplicates, file claims, idempotent replays, declared expectations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DecimalType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from medallion.schemas import CHANNELS, COUNTRIES, CURRENCIES, MAX_LINE_BYTES, MERCHANT_CATEGORIES

EVENTS_LANDING = StructType(
    [
        StructField("event_id", StringType()),
        StructField("card_id", StringType()),
        StructField("merchant_id", StringType()),
        StructField("merchant_category", StringType()),
        StructField("amount", DecimalType(18, 2)),
        StructField("currency", StringType()),
        StructField("country", StringType()),
        StructField("channel", StringType()),
        StructField("event_ts", TimestampType()),
    ]
)
LABELS_LANDING = StructType(
    [
        StructField("event_id", StringType()),
        StructField("is_fraud", BooleanType()),
        StructField("labeled_at", TimestampType()),
    ]
)
LANDING = {"events": EVENTS_LANDING, "labels": LABELS_LANDING}
BRONZE_COLUMNS = ("raw", "source_file", "ingested_at")


def _valid(feed: str) -> Column:
    schema = LANDING[feed]
    rule = F.octet_length("raw") <= MAX_LINE_BYTES
    for name in schema.fieldNames():
        rule = rule & F.col(name).isNotNull()
    if feed == "events":
        rule = (
            rule
            & (F.col("amount") >= 0)
            & F.col("currency").isin(*CURRENCIES)
            & F.col("channel").isin(*CHANNELS)
            & F.col("country").isin(*COUNTRIES)
            & F.col("merchant_category").isin(*MERCHANT_CATEGORIES)
        )
    # A null comparison (a field that did not parse) is a failure, not "unknown".
    return F.coalesce(rule, F.lit(False))


@dataclass(frozen=True)
class PeerCounts:
    bronze: int
    silver: int
    quarantine: int


class TextbookIngest:
    """Bronze, silver and quarantine Delta tables of both feeds under ``root``, written by
    delta-spark (the session needs Delta's extension: ``delta.engine=spark``)."""

    def __init__(self, spark: SparkSession, root: Path):
        self.spark = spark
        self.root = root

    def path(self, layer: str, feed: str = "") -> str:
        return str(self.root / layer / feed)

    def run_batch(self, files: dict[str, list[str]]) -> None:
        """One batch: each feed's landing files through bronze, silver and quarantine."""
        for feed, paths in files.items():
            if paths:
                self._ingest(feed, paths)

    def _ingest(self, feed: str, paths: list[str]) -> None:
        from delta.tables import DeltaTable

        ingested_at = datetime.now(UTC)
        lines = self.spark.read.text(paths).select(
            F.col("value").alias("raw"),
            F.col("_metadata.file_path").alias("source_file"),
            F.lit(ingested_at).alias("ingested_at"),
        )
        parsed = (
            lines.withColumn("row", F.from_json("raw", LANDING[feed]))
            .select(*BRONZE_COLUMNS, "row.*")
            .withColumn("is_valid", _valid(feed))
            .persist()
        )
        try:
            parsed.select(*BRONZE_COLUMNS).write.format("delta").mode("append").save(
                self.path("bronze", feed)
            )
            valid = parsed.where("is_valid").drop("raw", "is_valid")
            if feed == "events":
                valid = valid.withColumn("event_date", F.to_date("event_ts")).dropDuplicates(["event_id"])
                silver = (
                    DeltaTable.createIfNotExists(self.spark)
                    .location(self.path("silver", feed))
                    .addColumns(valid.schema)
                    .partitionedBy("event_date")
                    .execute()
                )
                (
                    silver.alias("t")
                    .merge(valid.alias("s"), "t.event_id = s.event_id")
                    .whenNotMatchedInsertAll()
                    .execute()
                )
            else:
                valid.write.format("delta").mode("append").save(self.path("silver", feed))
            (
                parsed.where(~F.col("is_valid"))
                .select(F.lit(feed).alias("feed"), *BRONZE_COLUMNS)
                .write.format("delta")
                .mode("append")
                .partitionBy("feed")
                .save(self.path("quarantine"))
            )
        finally:
            parsed.unpersist()

    def counts(self, feed: str) -> PeerCounts:
        def rows(path: str, where: str | None = None) -> int:
            frame: DataFrame = self.spark.read.format("delta").load(path)
            return (frame.where(where) if where else frame).count()

        return PeerCounts(
            rows(self.path("bronze", feed)),
            rows(self.path("silver", feed)),
            rows(self.path("quarantine"), f"feed = '{feed}'"),
        )
