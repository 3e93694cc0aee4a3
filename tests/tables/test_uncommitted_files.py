"""What a failure or a vacuum may delete: never the files of a commit that landed, always old orphans."""

from __future__ import annotations

from datetime import date

import pytest

from medallion.tables.delta_rs import DeltaRsTable
from medallion.tables.table import Table
from tests.tables.conftest import SCHEMA, rows


class PostCommitFailure(RuntimeError):
    """What delta-rs raises when its post-commit work (checkpoint, log cleanup) fails."""


def test_a_failure_after_the_commit_landed_keeps_its_files(spark, tmp_path, monkeypatch):
    table = Table.create(spark, str(tmp_path / "t"), SCHEMA, partition_by=["event_date"], engine="rs")
    committed = DeltaRsTable._commit

    def commit_then_fail(self, *args, **kwargs):
        committed(self, *args, **kwargs)
        raise PostCommitFailure("checkpoint failed after the commit was written")

    monkeypatch.setattr(DeltaRsTable, "_commit", commit_then_fail)
    frame = spark.createDataFrame(rows([1, 2, 3], date(2026, 11, 20)), SCHEMA)
    with pytest.raises(PostCommitFailure):
        table.append(frame, txn=("app:events", 0))  # staged by Spark: no driver shortcut
    monkeypatch.undo()
    # The version is durable and every file it names is still there.
    assert sorted(r.event_id for r in table.read().collect()) == ["e1", "e2", "e3"]
    # The caller's retry is a no-op: the txn is in the log.
    assert table.append(frame, txn=("app:events", 0)) is False
    assert table.read().count() == 3


def test_a_commit_that_did_not_land_leaves_no_files(spark, tmp_path, monkeypatch):
    table = Table.create(spark, str(tmp_path / "t"), SCHEMA, partition_by=["event_date"], engine="rs")

    def refuse(self, *args, **kwargs):
        raise PostCommitFailure("the object store refused the commit")

    monkeypatch.setattr(DeltaRsTable, "_commit", refuse)
    frame = spark.createDataFrame(rows([1], date(2026, 11, 20)), SCHEMA)
    with pytest.raises(PostCommitFailure):
        table.append(frame)
    monkeypatch.undo()
    data = [p for p in (tmp_path / "t").rglob("*.parquet")]
    assert data == []
    assert table.read().count() == 0


def _age(path, hours: float) -> None:
    import os
    import time

    then = time.time() - hours * 3600
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(item, (then, then))


def test_vacuum_removes_orphans_past_retention_and_spares_a_live_writers_files(events, frame, table_path):
    """A killed writer's files (moved into the table, or left in its staging folder) and a
    failed commit's are orphans: no commit names them. Vacuum removes them once past the
    retention; files staged moments ago belong to a writer still at work."""
    import shutil
    from pathlib import Path

    events.append(frame([1, 2]))
    root = Path(table_path)
    committed = next(root.rglob("*.parquet"))
    orphan = committed.with_name("part-99999-killed-writer.c000.snappy.parquet")
    shutil.copy(committed, orphan)
    staging = root / "staging-0123456789abcdef"
    staging.mkdir()
    shutil.copy(committed, staging / "part-00000-left.snappy.parquet")
    _age(orphan, 200)
    _age(staging, 200)
    live = committed.with_name("part-88888-live-writer.c000.snappy.parquet")
    shutil.copy(committed, live)

    events.vacuum(retention_hours=168)
    assert not orphan.exists()
    assert not any(staging.rglob("*.parquet"))
    assert live.exists() and committed.exists()
    assert sorted(r.event_id for r in events.read().collect()) == ["e1", "e2"]
