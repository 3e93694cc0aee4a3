"""Run streaming queries in the foreground and stop them cleanly.

Usage::

    gate = BatchGate()
    query = frame.writeStream.foreachBatch(gate.wrap(write_batch)).start()
    run_until_stopped(query, timeout=60, gate=gate)

SIGTERM (what a scheduler or ``kill`` sends) and Ctrl-C ask for a stop. With a
:class:`BatchGate` around the foreachBatch body the query is stopped between two batches,
never in the middle of one, so the last batch commits whole. Without one, the query is
stopped once Spark reports no trigger running (fine for slow triggers, a race for
back-to-back batches).
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pyspark.errors import StreamingQueryException

from medallion.errors import MedallionError

if TYPE_CHECKING:
    from pyspark.sql.streaming import StreamingQuery

STOP_MARKER = "medallion: stop requested"
# How a medallion error raised in a foreachBatch body reads in Spark's query exception.
_RAISED_IN_BATCH = re.compile(r"medallion\.[\w.]+\.(?:\w*Error|ExpectationFailed): (.+)")


class StopRequested(RuntimeError):
    """Raised by a gated batch that started after a stop was requested; it is replayed on restart."""


class BatchGate:
    """Knows whether a foreachBatch body is running, and lets none start once a stop is asked.

    Spark gives no "stop after this batch" call: ``query.stop()`` interrupts whatever runs.
    The gate waits for the running body to finish, then stops the query. A batch Spark starts
    in that instant refuses to write (:class:`StopRequested`): its offsets are logged but not
    committed, so the restarted query runs it again. Nothing is half-written either way.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._running = False
        self._stopping = False

    def wrap(self, body: Callable[[object, int], None]) -> Callable[[object, int], None]:
        def gated(frame, batch_id: int) -> None:
            with self._lock:
                if self._stopping:
                    raise StopRequested(f"{STOP_MARKER} before batch {batch_id}; it runs again on restart")
                self._running = True
            try:
                body(frame, batch_id)
            finally:
                with self._lock:
                    self._running = False
                    self._lock.notify_all()

        return gated

    def stop(self, query, max_wait_s: float = 600.0) -> None:
        """Let the running batch commit, then stop ``query``."""
        with self._lock:
            self._stopping = True
            self._lock.wait_for(lambda: not self._running, timeout=max_wait_s)
        query.stop()


def stop_between_batches(query, poll_s: float = 0.1, max_wait_s: float = 120.0) -> None:
    """Stop ``query`` once Spark reports no trigger running (for micro-batch queries without
    a gate), or after ``max_wait_s`` interrupting the trigger that runs."""
    deadline = time.monotonic() + max_wait_s
    while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
        time.sleep(poll_s)
    stop_interrupting(query)


def stop_interrupting(query) -> None:
    """``query.stop()``, without Spark's ERROR lines for the writer tasks the stop interrupts.

    A continuous or real-time query always has its tasks running: stopping it interrupts
    them, and Spark logs each interrupted writer as an ERROR with its stack trace. That is
    the stop asked for, not a failure, so those loggers are silent until the tasks are gone.
    """
    with _interrupted_tasks_unlogged():
        query.stop()


# Where Spark logs a writer task that a query's stop interrupted (continuous, real-time).
_INTERRUPTED_TASK_LOGGERS = (
    "org.apache.spark.util.Utils",  # "Aborting task"
    "org.apache.spark.sql.execution.streaming.continuous.ContinuousWriteRDD",
    "org.apache.spark.sql.execution.datasources.v2.DataWritingSparkTask",
    # A real-time batch is a micro-batch write: its stop aborts the batch's write on the driver.
    "org.apache.spark.sql.execution.datasources.v2.WriteToDataSourceV2Exec",
)


@contextmanager
def _interrupted_tasks_unlogged(settle_s: float = 10.0) -> Iterator[None]:
    from pyspark import SparkContext

    context = SparkContext._active_spark_context
    if context is None:
        yield
        return
    jvm = context._jvm
    log4j = jvm.org.apache.logging.log4j
    configurator = log4j.core.config.Configurator
    before = {name: log4j.LogManager.getLogger(name).getLevel() for name in _INTERRUPTED_TASK_LOGGERS}
    for name in before:
        configurator.setLevel(name, log4j.Level.OFF)
    try:
        yield
        # The interrupted tasks end, and log, after stop() returns.
        deadline = time.monotonic() + settle_s
        while context.statusTracker().getActiveJobsIds() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for name, level in before.items():
            configurator.setLevel(name, level)


def run_until_stopped(
    query,
    timeout: float | None = None,
    log: Callable[[str], None] = print,
    gate: BatchGate | None = None,
    refresh: Callable[[StreamingQuery], StreamingQuery | None] | None = None,
    refresh_every: float = 60.0,
    interrupt: bool = False,
) -> None:
    """Block until the query ends by itself (availableNow), ``timeout`` passes, or a stop signal.

    ``refresh``, called every ``refresh_every`` seconds, may replace the query: it returns the
    query that runs on (having stopped the old one), or None to keep it. ``interrupt`` is for
    a continuous or real-time query: its tasks never end by themselves (a real-time batch
    starts as the last ends), so waiting for a pause between batches would wait in vain; the
    stop interrupts them, and its at-least-once sink gets their records again after a restart.
    """
    stop = threading.Event()

    def request_stop(signum, frame) -> None:
        log(f"[stream] {signal.Signals(signum).name}: stopping after the current batch")
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, request_stop)
    started = checked = time.monotonic()
    try:
        while query.isActive and not stop.is_set():
            now = time.monotonic()
            if timeout is not None and now - started >= timeout:
                log(f"[stream] {timeout:.0f}s elapsed: stopping after the current batch")
                break
            if refresh is not None and now - checked >= refresh_every:
                checked = now
                query = refresh(query) or query
            try:
                query.awaitTermination(0.5)
            except StreamingQueryException:
                break  # it failed while waited on: its error is read below, as when it failed between waits
        if query.isActive:
            if gate is not None:
                gate.stop(query)
            elif interrupt:
                stop_interrupting(query)
            else:
                stop_between_batches(query)
        error = query.exception()
        if error is not None and STOP_MARKER not in str(error):
            raise _user_error(error) or error
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _user_error(error: Exception) -> MedallionError | None:
    """A medallion error raised inside a micro-batch, as its one line, not Spark's trace around it."""
    found = _RAISED_IN_BATCH.findall(str(error))
    return MedallionError(found[-1].strip()) if found else None
