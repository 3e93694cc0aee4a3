"""A failure after a durable commit never deletes the files that commit names (embedded engine)."""

from __future__ import annotations

from datetime import date

import pytest

from medallion.tables.rs_engine import RsTable
from medallion.tables.table import Table
from tests.tables.conftest import SCHEMA, rows


class PostCommitFailure(RuntimeError):
    """What delta-rs raises when its post-commit work (checkpoint, log cleanup) fails."""


def test_a_failure_after_the_commit_landed_keeps_its_files(spark, tmp_path, monkeypatch):
    table = Table.create(spark, str(tmp_path / "t"), SCHEMA, partition_by=["event_date"], engine="rs")
    committed = RsTable._commit

    def commit_then_fail(self, *args, **kwargs):
        committed(self, *args, **kwargs)
        raise PostCommitFailure("checkpoint failed after the commit was written")

    monkeypatch.setattr(RsTable, "_commit", commit_then_fail)
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

    monkeypatch.setattr(RsTable, "_commit", refuse)
    frame = spark.createDataFrame(rows([1], date(2026, 11, 20)), SCHEMA)
    with pytest.raises(PostCommitFailure):
        table.append(frame)
    monkeypatch.undo()
    data = [p for p in (tmp_path / "t").rglob("*.parquet")]
    assert data == []
    assert table.read().count() == 0
