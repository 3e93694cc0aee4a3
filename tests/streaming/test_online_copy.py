"""The stream's copy to the online store: in batch order, off the batch's thread, never blocking it."""

from __future__ import annotations

import sqlite3
import time

import pyarrow as pa
import pytest

from medallion.serving.sqlite_store import SqliteStore
from medallion.streaming.online_copy import OnlineStoreCopy


def _served(*event_ids: str, score: float = 0.5) -> pa.Table:
    return pa.table(
        {"event_id": list(event_ids), "score": [score] * len(event_ids), "source": ["speed"] * len(event_ids)}
    )


def test_rows_reach_the_store_in_batch_order(tmp_path):
    store = SqliteStore(tmp_path / "online.sqlite")
    copy = OnlineStoreCopy(store, log=lambda _: None)
    copy.put(_served("e1", "e2", score=0.1))
    copy.put(_served("e1", score=0.9))  # a later batch's row for the same event wins
    copy.close()
    assert store.serving_row("e1")["score"] == 0.9 and store.serving_row("e2")["score"] == 0.1
    assert copy.written == 3 and copy.skipped == 0
    with pytest.raises(ValueError, match="closed"):
        copy.put(_served("e3"))


def test_a_store_that_holds_the_batches_up_drops_the_oldest_and_never_blocks_a_put(tmp_path):
    path = tmp_path / "online.sqlite"
    store = SqliteStore(path)
    lines: list[str] = []
    copy = OnlineStoreCopy(store, log=lines.append, max_queued=2)
    # Another process's write transaction holds the database: the copy's writer waits on it.
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        copy.put(_served("first"))  # taken by the writer, which now waits on the lock
        deadline = time.monotonic() + 10
        while copy._queue.qsize() and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        for i in range(5):
            copy.put(_served(f"later-{i}"))
        assert time.monotonic() - started < 1.0  # no put waited on the store
    finally:
        holder.execute("COMMIT")
        holder.close()
    copy.close()
    # The queue held two batches: of the five queued behind the stuck one, the oldest three went.
    assert copy.skipped == 3 and sum("online store behind" in line for line in lines) == 3
    assert store.serving_row("first") is not None
    assert [store.serving_row(f"later-{i}") is not None for i in range(5)] == [
        False,
        False,
        False,
        True,
        True,
    ]


def test_misuse_is_a_value_error(tmp_path):
    store = SqliteStore(tmp_path / "online.sqlite")
    with pytest.raises(ValueError, match="retry_seconds"):
        OnlineStoreCopy(store, retry_seconds=-1)
    with pytest.raises(ValueError, match="max_queued"):
        OnlineStoreCopy(store, max_queued=0)
