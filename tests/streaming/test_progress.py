"""gold.stream_metrics' listener: what it waits for when the query stops."""

from __future__ import annotations

import time

import pytest
from pyspark.errors import StreamingQueryException

from medallion.catalog import STREAM_METRICS
from medallion.streaming.progress import BatchFigures, StreamProgress
from medallion.tables import Lakehouse


def test_a_query_that_ends_before_its_batch_commits_leaves_flush_nothing_to_wait_for(
    spark, settings, tmp_path
):
    """A batch recorded by its body but never committed to the checkpoint (the query failed or
    was stopped after the body) gets no progress event: flush returns once the listener has
    heard the query end, not after its whole timeout."""
    lines: list[str] = []
    metrics = Lakehouse(settings, spark).open(STREAM_METRICS)
    progress = StreamProgress(spark, metrics, query_name="flush_probe", log=lines.append).attach()
    figures = BatchFigures(
        landed=1,
        scored=1,
        quarantined=0,
        duplicates=0,
        latency_p50_ms=1.0,
        latency_p95_ms=1.0,
        model_version="1",
    )

    def body(batch, batch_id):
        progress.record(batch_id, figures, app_id="flush_probe")
        raise RuntimeError("the batch fails after its body recorded it")

    query = (
        spark.readStream.format("rate")
        .option("rowsPerSecond", 10)
        .load()
        .writeStream.queryName("flush_probe")
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .foreachBatch(body)
        .start()
    )
    with pytest.raises(StreamingQueryException):
        query.awaitTermination(120)

    began = time.monotonic()
    progress.flush(timeout_s=600)
    waited = time.monotonic() - began
    progress.detach()
    assert waited < 300, f"flush waited {waited:.0f}s for a batch that will never report"
    assert metrics.read().count() == 0  # the failed batch wrote no metrics row
