"""The streams that read what lands, and ``medallion ingest --mode stream``.

Usage::

    from medallion.streaming.landing import landed_stream, start_ingest

    landed = landed_stream(spark, settings)                  # the speed layer's input
    queries = start_ingest(Ingestor(settings, spark), {"availableNow": True})

Events come from the landing folder (``stream.source: files``) or the Kafka topic
(``stream.source: kafka``); labels always land as files. Every micro-batch of the ingest
queries goes through :meth:`medallion.ingest.Ingestor.process`, keyed by the query's id and
the batch id, so a replay writes nothing twice.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from medallion.bronze import read_kafka, read_landing
from medallion.config import Settings
from medallion.ingest import FEEDS, IngestedBatch, Ingestor
from medallion.streaming.checkpoint import listed_files, query_id
from medallion.streaming.compaction import Compaction
from medallion.streaming.plan import kafka_options


def landed_stream(
    spark: SparkSession, settings: Settings, feed: str = "events", continuous: bool = False
) -> DataFrame:
    """The feed's landed lines as a stream: the events from the landing folder or the Kafka
    topic (``continuous``: see :func:`medallion.bronze.read_kafka`), the labels from theirs."""
    stream = settings.stream
    if feed == "events" and stream.source == "kafka":
        kafka = stream.kafka
        return read_kafka(
            spark,
            kafka_options(settings),
            kafka.topic,
            kafka.starting_offsets,
            kafka.max_offsets_per_trigger,
            continuous=continuous,
        )
    storage = settings.storage
    folder = storage.landing_events if feed == "events" else storage.landing_labels
    if not storage.is_uri:  # an object store has no folders to make
        Path(folder).mkdir(parents=True, exist_ok=True)
    return read_landing(
        spark,
        folder,
        stream=True,
        max_files_per_trigger=stream.max_files_per_trigger,
        max_bytes_per_trigger=stream.max_bytes_per_trigger,
    )


def start_ingest(
    ingestor: Ingestor,
    trigger: dict[str, object],
    query_name: str = "ingest",
    await_termination: bool = False,
) -> list[StreamingQuery]:
    """One query per feed (``<query_name>_events``, ``<query_name>_labels``): landed lines
    through bronze into silver, micro-batch by micro-batch."""
    settings = ingestor.settings
    queries = []
    for feed in FEEDS:
        name = f"{query_name}_{feed}"
        checkpoint = settings.storage.checkpoint_path(name)
        tables = [ingestor.bronze[feed], ingestor.silver[feed], ingestor.quarantine]
        write = _batch_writer(ingestor, feed, checkpoint, Compaction(tables, settings.stream.compact_every))
        query = (
            landed_stream(ingestor.spark, settings, feed)
            .writeStream.queryName(name)
            .option("checkpointLocation", checkpoint)
            .foreachBatch(write)
            .trigger(**trigger)
            .start()
        )
        queries.append(query)
    if await_termination:
        for query in queries:
            query.awaitTermination()
    return queries


def _batch_writer(ingestor: Ingestor, feed: str, checkpoint: str, compaction: Compaction):
    kafka = feed == "events" and ingestor.settings.stream.source == "kafka"

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        app_id = f"stream:{query_id(checkpoint)}"
        ingested = ingestor.process(feed, batch, app_id, batch_id)
        ingested.release()
        if not kafka:
            record_lineless(ingestor, feed, checkpoint, batch_id, ingested, app_id)
        compaction.after(batch_id)

    return write_batch


def record_lineless(
    ingestor: Ingestor, feed: str, checkpoint: str, batch_id: int, ingested: IngestedBatch, app_id: str
) -> tuple[int, int]:
    """Record each file the micro-batch listed that gave no line (it vanished before the read,
    or its only lines were too long to read); keyed by the batch, so a replay writes nothing
    twice. Returns (missing, unread) as :meth:`Ingestor.record_lineless`."""
    lineless = sorted(set(listed_files(checkpoint, batch_id)) - set(ingested.files_read))
    return ingestor.record_lineless(feed, lineless, txn=(f"{app_id}:lineless", batch_id))
