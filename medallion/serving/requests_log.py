"""gold.online_requests: every online answer with its model inputs, written in batches.

Usage::

    from medallion.serving.requests_log import RequestLog

    log = RequestLog.open(settings)      # the Delta table, created if absent
    log.start()                          # flush every serving.log_flush_seconds in a thread
    log.add(txn, features, key, answer, latency_ms)
    log.flush()                          # one Delta commit for everything buffered
    log.stop()                           # last flush

One commit per flush, not per request. The next ``medallion serve materialize`` reads the
rows that missed and precomputes their inputs with the champion of that night. With the
embedded Delta engine the service writes through delta-rs and starts no JVM; with
``delta.engine: spark`` it writes through the session.
"""

from __future__ import annotations

import os
import sys
import threading
from datetime import UTC, datetime
from typing import Any

from medallion.catalog import ONLINE_REQUESTS
from medallion.config import Settings
from medallion.schemas import ONLINE_REQUESTS_SCHEMA
from medallion.tables.arrow import driver_rows
from medallion.tables.table import Table

#: Rows kept for a retry when a flush fails; past it the oldest are counted as lost.
MAX_PENDING = 200_000


def open_requests_table(settings: Settings, spark=None) -> Table:
    """gold.online_requests, created if absent, on the conf's engine (no JVM for the embedded one)."""
    path = settings.storage.table_path(ONLINE_REQUESTS.layer, ONLINE_REQUESTS.name)
    on_databricks = bool(os.environ.get("DATABRICKS_RUNTIME_VERSION"))
    # As medallion.tables.resolve_engine decides: auto is the embedded engine off Databricks.
    if settings.delta.engine == "rs" or (settings.delta.engine == "auto" and not on_databricks):
        return Table.create(spark, path, ONLINE_REQUESTS.schema, ONLINE_REQUESTS.partition_by, engine="rs")
    from medallion.spark import get_spark
    from medallion.tables import Lakehouse

    lake = Lakehouse(settings, spark or get_spark(settings))
    return lake.open(ONLINE_REQUESTS)


class RequestLog:
    """A buffer of answered requests, committed to gold.online_requests in batches."""

    def __init__(self, table: Table, flush_seconds: float = 2.0, flush_rows: int = 5000) -> None:
        self.table = table
        self.flush_seconds = flush_seconds
        self.flush_rows = flush_rows
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.commits = 0
        self.lost = 0
        self.last_error: str | None = None

    @classmethod
    def open(cls, settings: Settings, spark=None) -> RequestLog:
        return cls(
            open_requests_table(settings, spark),
            settings.serving.log_flush_seconds,
            settings.serving.log_flush_rows,
        )

    def add(self, txn, features: dict[str, Any], key: str, answer: dict[str, Any], latency_ms: float) -> None:
        now = datetime.now(UTC)
        row = {
            "request_date": now.date(),
            "requested_at": now,
            "event_id": txn.event_id,
            "card_id": txn.card_id,
            "event_ts": txn.event_ts,
            "event_date": txn.event_date,
            "key": key,
            "model_version": answer["model_version"],
            "precomputed": answer["precomputed"],
            "source": answer["source"],
            "score": answer["score"],
            "decision": answer["decision"],
            "card_known": answer["card_known"],
            "latency_ms": latency_ms,
            "scored_by": answer.get("scored_by"),
            **features,
        }
        with self._lock:
            self._rows.append(row)
            full = len(self._rows) >= self.flush_rows
        if full:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._rows)

    def flush(self) -> int:
        """Commit what is buffered (one Delta commit); returns the rows written."""
        with self._flushing:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                return 0
            try:
                self.table.append(driver_rows(ONLINE_REQUESTS_SCHEMA, rows))
            except Exception as exc:
                # Kept for the next flush: a busy or unreachable table must not lose requests.
                self.last_error = f"{type(exc).__name__}: {exc}"
                print(
                    f"[serve] gold.online_requests flush failed ({self.last_error}); will retry",
                    file=sys.stderr,
                )
                with self._lock:
                    self._rows = rows + self._rows
                    overflow = len(self._rows) - MAX_PENDING
                    if overflow > 0:
                        del self._rows[:overflow]
                        self.lost += overflow
                return 0
            self.written += len(rows)
            self.commits += 1
            self.last_error = None
            return len(rows)

    def start(self) -> None:
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.is_set():
                self._wake.wait(self.flush_seconds)
                self._wake.clear()
                self.flush()

        self._thread = threading.Thread(target=loop, name="online-requests-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()
