"""One Delta protocol: a table written by either engine is read, appended to and merged by the other."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from medallion.tables import Table
from tests.tables.conftest import SCHEMA

# Any two days: nothing here reads the clock.
DAY1, DAY2 = date(2026, 11, 20), date(2026, 11, 21)


def rows_of(table: Table) -> list[tuple]:
    return sorted((r.event_id, r.n, r.event_date) for r in table.read().collect())


@pytest.mark.parametrize(("writer", "other"), [("rs", "spark"), ("spark", "rs")])
def test_a_table_one_engine_wrote_is_read_appended_and_merged_by_the_other(
    spark, table_path, frame, writer, other
):
    first = Table.create(spark, table_path, SCHEMA, partition_by=["event_date"], engine=writer)
    assert first.append(frame(range(3)), txn=("cross", 0))

    second = Table.at(spark, table_path, engine=other)
    assert rows_of(second) == [(f"e{i}", 1, DAY1) for i in range(3)]
    assert second.partition_by == ["event_date"]
    # The writer's txn is the other engine's too: a replay through it writes nothing.
    assert second.last_txn_version("cross") == 0
    assert not second.append(frame(range(3)), txn=("cross", 0))
    assert second.append(frame(range(3, 5), DAY2), txn=("cross", 1))
    second.merge(frame([1, 7], n=9), on="event_id")

    expected = sorted(
        [("e0", 1, DAY1), ("e1", 9, DAY1), ("e2", 1, DAY1), ("e3", 1, DAY2), ("e4", 1, DAY2), ("e7", 9, DAY1)]
    )
    assert rows_of(second) == expected
    # And back: the first engine reads what the other committed, and its history.
    assert rows_of(first) == expected
    assert first.version() == second.version() == 3  # create, two appends, the merge
    assert first.last_txn_version("cross") == 1
    assert first.read().where(F.col("event_date") == DAY2).count() == 2


def test_delta_spark_follows_txns_across_checkpoints_other_writers_and_a_replaced_table(
    spark, table_path, frame
):
    """delta-spark keeps each table's txns per process and reads only the commits after the
    ones it knows: what it answers must equal a full replay whatever happened in between."""
    import shutil

    from medallion.tables.delta_spark import log

    table = Table.create(spark, table_path, SCHEMA, partition_by=["event_date"], engine="spark")
    spark.sql(f"ALTER TABLE delta.`{table_path}` SET TBLPROPERTIES ('delta.checkpointInterval' = '2')")
    for version in range(1, 4):
        assert table.append(frame([version]), txn=("app", version))
        assert not table.append(frame([version]), txn=("app", version))  # the replay is known
        assert table.last_txn_version("app") == version
    assert list((Path(table_path) / "_delta_log").glob("*.checkpoint.parquet"))
    # Another engine's commit in between is read too.
    assert Table.at(spark, table_path, engine="rs").append(frame([9]), txn=("rs-app", 3))
    assert table.last_txn_version("rs-app") == 3 and table.last_txn_version("app") == 3
    # A cold process replays from the checkpoint and agrees.
    log._KNOWN.clear()
    assert table.last_txn_version("app") == 3 and table.last_txn_version("rs-app") == 3

    # The table replaced at the same path: nothing known of the old one may hold.
    shutil.rmtree(table_path)
    table = Table.create(spark, table_path, SCHEMA, partition_by=["event_date"], engine="spark")
    assert table.last_txn_version("app") is None
    assert table.append(frame([1]), txn=("app", 2))
    assert table.last_txn_version("app") == 2 and table.read().count() == 1
