"""The stream's serving rows copied to the online store, off the micro-batch's path.

Usage::

    from medallion.streaming.online_copy import OnlineStoreCopy

    copy = OnlineStoreCopy(store, log=print)
    copy.put(served)        # a pyarrow table of serving rows gold.predictions committed
    copy.close()            # when the query stopped: what is queued is written first

The online store is a copy of gold.predictions: the next ``medallion serve materialize``
publishes every committed row, so a row the copy never writes is late, not lost. A batch
therefore does not wait for the store: one thread writes the queued batches in order, and a
store that fails is left alone for ``retry_seconds`` (a store that is away would otherwise
cost every batch its connection timeout).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

import pyarrow as pa

from medallion.errors import MedallionError
from medallion.serving.store import OnlineStore, jsonable_row

#: Batches waiting for the store; past it the oldest waiting batch is skipped (and said).
MAX_QUEUED_BATCHES = 100
#: After a failed write to the store, the batches of this long are not copied to it.
RETRY_SECONDS = 60.0


class OnlineStoreCopy:
    """One writer thread putting the stream's serving rows into ``store``, in batch order."""

    def __init__(
        self,
        store: OnlineStore,
        log: Callable[[str], None] = print,
        retry_seconds: float = RETRY_SECONDS,
        max_queued: int = MAX_QUEUED_BATCHES,
    ) -> None:
        if retry_seconds < 0:
            raise ValueError(f"retry_seconds must be >= 0, got {retry_seconds}")
        if max_queued < 1:
            raise ValueError(f"max_queued must be >= 1, got {max_queued}")
        self.store = store
        self.log = log
        self.retry_seconds = retry_seconds
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=max_queued)
        self._retry_at = 0.0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="online-store-copy", daemon=True)
        self._thread.start()
        self.written = 0  # rows
        self.skipped = 0  # rows not copied: the store was failing, or the queue was full

    def put(self, served: pa.Table) -> None:
        """Queue ``served`` for the store; never waits on it."""
        if self._closed:
            raise ValueError("this OnlineStoreCopy is closed")
        while True:
            try:
                self._queue.put_nowait(served)
                return
            except queue.Full:
                try:
                    oldest = self._queue.get_nowait()
                except queue.Empty:
                    continue
                self._queue.task_done()
                self.skipped += oldest.num_rows
                self.log(
                    f"[stream] online store behind by {self._queue.maxsize} batches: "
                    f"{oldest.num_rows} serving rows left to serve materialize"
                )

    def flush(self) -> None:
        """Wait until every queued batch is written or skipped."""
        self._queue.join()

    def close(self, timeout: float = 60.0) -> None:
        """Write what is queued, then stop the thread (at most ``timeout`` seconds)."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            served = self._queue.get()
            try:
                if served is None:
                    return
                self._write(served)
            finally:
                self._queue.task_done()

    def _write(self, served: pa.Table) -> None:
        if time.monotonic() < self._retry_at:
            self.skipped += served.num_rows
            return
        try:
            self.store.put_stream_rows([jsonable_row(row) for row in served.to_pylist()])
        except Exception as failure:  # whatever the store raises, the stream goes on: it is a copy
            why = failure if isinstance(failure, MedallionError) else f"{type(failure).__name__}: {failure}"
            self._retry_at = time.monotonic() + self.retry_seconds
            self.skipped += served.num_rows
            self.log(
                f"[stream] online store not updated for {self.retry_seconds:.0f}s "
                f"(serve materialize will catch up): {why}"
            )
            return
        self.written += served.num_rows
