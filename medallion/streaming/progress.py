"""Per-batch observability of the speed layer: gold.stream_metrics and one console line per batch.

Usage::

    progress = StreamProgress(spark, metrics_table, query_name="score_events", log=print)
    progress.attach()                          # a StreamingQueryListener on the session
    ...                                        # foreachBatch calls progress.record(batch_id, figures)
    progress.flush(timeout_s=10)               # after stopping: wait for the last batch's row
    progress.detach()

Spark reports what it knows of a batch (input rows, rows/s, trigger duration) to a
:class:`StreamingQueryListener` once the batch has committed; the foreachBatch body knows
the rest (latency landed -> committed, quarantined rows, model version). The listener joins
both on the batch id and writes the row off the query's own thread, so observability never
adds to a batch's latency.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQueryListener
from pyspark.sql.streaming.listener import JStreamingQueryListener, QueryProgressEvent

from medallion.schemas import STREAM_METRICS_SCHEMA
from medallion.tables import Table
from medallion.tables.arrow import driver_rows


@dataclass(frozen=True)
class BatchFigures:
    """What the foreachBatch body measured for one micro-batch."""

    landed: int
    scored: int
    quarantined: int
    duplicates: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    model_version: str


def format_line(
    batch_id: int, figures: BatchFigures, rows_per_s: float | None, duration_ms: int | None
) -> str:
    """The one console line a batch gets."""
    p50 = "-" if figures.latency_p50_ms is None else f"{figures.latency_p50_ms:.0f}"
    p95 = "-" if figures.latency_p95_ms is None else f"{figures.latency_p95_ms:.0f}"
    rate = "-" if rows_per_s is None else f"{rows_per_s:.0f}"
    took = "-" if duration_ms is None else f"{duration_ms}"
    return (
        f"[stream] batch {batch_id}: {figures.landed} landed, {figures.scored} scored, "
        f"{figures.quarantined} quarantined, {figures.duplicates} duplicates | {rate} rows/s, {took} ms | "
        f"latency p50 {p50} ms p95 {p95} ms | model v{figures.model_version}"
    )


class _ProgressFromJson(JStreamingQueryListener):
    """Hands the listener each progress event parsed from the event's JSON: one gateway call.

    pyspark's own conversion reads the event field by field, about 400 gateway calls per
    batch; they ran on the listener's thread while the next batch built its plans over the
    same gateway, and cost it about 90 ms.
    """

    def onQueryProgress(self, jevent) -> None:
        self.pylistener.onQueryProgress(QueryProgressEvent.fromJson(json.loads(jevent.json())))


class StreamProgress(StreamingQueryListener):
    """Writes gold.stream_metrics rows and progress lines for one query, keyed by batch id."""

    def __init__(
        self,
        spark: SparkSession,
        metrics: Table,
        query_name: str,
        log: Callable[[str], None] = print,
    ) -> None:
        self.spark = spark
        self.metrics = metrics
        self.query_name = query_name
        self.log = log
        self.app_id: str | None = None
        self._pending: dict[int, BatchFigures] = {}
        self._written: set[int] = set()
        self._lock = threading.Condition()
        self._attached = False
        self._running: set[str] = set()  # ids of queries started and not yet seen to end

    # ------------------------------------------------------------------ lifecycle

    def attach(self) -> StreamProgress:
        if not self._attached:
            self.spark.streams.addListener(self)
            self._attached = True
        return self

    @property
    def _jlistener(self):
        # pyspark registers this Java wrapper of the listener (classic sessions only).
        if not hasattr(self, "_jlistenerobj"):
            jvm = self.spark.sparkContext._jvm
            self._jlistenerobj = jvm.PythonStreamingQueryListenerWrapper(_ProgressFromJson(self))
        return self._jlistenerobj

    def detach(self, timeout_s: float = 30.0) -> None:
        """Stop listening, once the listener has heard its queries end: Spark posts the
        terminated event asynchronously, and one delivered after this process closed its
        gateway ends in a py4j trace on stderr."""
        if not self._attached:
            return
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._running and time.monotonic() < deadline:
                self._lock.wait(0.1)
        self.spark.streams.removeListener(self)
        self._attached = False

    def record(self, batch_id: int, figures: BatchFigures, app_id: str) -> None:
        """Called by foreachBatch when a batch's writes have committed."""
        with self._lock:
            self.app_id = app_id
            self._pending[int(batch_id)] = figures

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every recorded batch has its metrics row (listener events are asynchronous).

        Once the listener has heard its queries end, no progress event is still to come: Spark
        posts a query's terminated event after all of its progress events. A batch still
        pending then was stopped before its commit reached the checkpoint; the restarted query
        runs it again and records it then, so there is nothing left to wait for.
        """
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._pending and self._running and time.monotonic() < deadline:
                self._lock.wait(0.1)

    # ------------------------------------------------------------------ listener callbacks

    def onQueryStarted(self, event) -> None:
        # Spark calls this on the thread that starts the query, before start() returns.
        if event.name == self.query_name:
            with self._lock:
                self._running.add(str(event.id))

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        with self._lock:
            self._running.discard(str(event.id))
            self._lock.notify_all()

    def onQueryProgress(self, event) -> None:
        progress = event.progress
        if progress.name != self.query_name:
            return
        batch_id = int(progress.batchId)
        with self._lock:
            figures = self._pending.get(batch_id)
        if figures is None:
            return  # a batch with no input, or one another process ran
        try:
            self._write(batch_id, figures, progress)
        except Exception as exc:  # observability must never take the query down
            self.log(f"[stream] batch {batch_id}: metrics not written: {exc}")
        finally:
            with self._lock:
                self._pending.pop(batch_id, None)
                self._written.add(batch_id)
                self._lock.notify_all()

    def _write(self, batch_id: int, figures: BatchFigures, progress) -> None:
        # Spark's numInputRows counts every read of the foreachBatch frame, not landed lines.
        duration_ms = (progress.durationMs or {}).get("triggerExecution")
        rows_per_s = figures.landed * 1000 / duration_ms if duration_ms else None
        values = (
            self.query_name,
            batch_id,
            datetime.now(UTC),
            int(figures.landed),
            rows_per_s,
            None if duration_ms is None else int(duration_ms),
            figures.latency_p50_ms,
            figures.latency_p95_ms,
            int(figures.quarantined),
            figures.model_version,
        )
        # Built on the driver: a Spark job per metrics row would take the next batch's CPU.
        self.metrics.append(
            driver_rows(
                STREAM_METRICS_SCHEMA, [dict(zip(STREAM_METRICS_SCHEMA.fieldNames(), values, strict=True))]
            ),
            txn=(f"{self.app_id}:metrics", batch_id),
            expected_rows=1,
        )
        self.log(
            format_line(batch_id, figures, rows_per_s, None if duration_ms is None else int(duration_ms))
        )
