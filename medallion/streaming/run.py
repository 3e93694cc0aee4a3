"""Run streaming queries in the foreground and stop them cleanly.

Usage::

    run_until_stopped(query, timeout=60)

SIGTERM (what a scheduler or ``kill`` sends) and Ctrl-C ask for a stop; the query is stopped
between two micro-batches, never in the middle of one, so the last batch commits whole.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable


def stop_between_batches(query, poll_s: float = 0.1, max_wait_s: float = 120.0) -> None:
    """Stop ``query`` once its current trigger has finished."""
    deadline = time.monotonic() + max_wait_s
    while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
        time.sleep(poll_s)
    query.stop()


def run_until_stopped(query, timeout: float | None = None, log: Callable[[str], None] = print) -> None:
    """Block until the query ends by itself (availableNow), ``timeout`` passes, or a stop signal."""
    stop = threading.Event()

    def request_stop(signum, frame) -> None:
        log(f"[stream] {signal.Signals(signum).name}: stopping after the current batch")
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, request_stop)
    started = time.monotonic()
    try:
        while query.isActive and not stop.is_set():
            if timeout is not None and time.monotonic() - started >= timeout:
                log(f"[stream] {timeout:.0f}s elapsed: stopping after the current batch")
                break
            query.awaitTermination(0.5)
        if query.isActive:
            stop_between_batches(query)
        error = query.exception()
        if error is not None:
            raise error
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
