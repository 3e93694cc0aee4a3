"""``merge(..., partition=...)``: one partition merged, the others neither read nor in the way."""

from __future__ import annotations

from datetime import date

import pytest
from pyspark.sql import functions as F

from medallion.errors import ConcurrentWriteError, MedallionError
from medallion.tables import Table
from tests.tables.conftest import SCHEMA

DAY1, DAY2 = date(2026, 11, 20), date(2026, 11, 21)


def contents(table) -> dict[tuple[str, date], int]:
    return {(r.event_id, r.event_date): r.n for r in table.read().collect()}


def day_files(table, day: date) -> set[str]:
    rows = table.read().where(F.col("event_date") == F.lit(day)).select(F.input_file_name().alias("f"))
    return {r.f for r in rows.distinct().collect()}


@pytest.fixture
def two_days(spark, engine, storage_root, frame):
    """Two identical tables holding two days, to merge with and without ``partition``."""

    def make(name):
        table = Table.create(
            spark, str(storage_root / name), SCHEMA, partition_by=["event_date"], engine=engine
        )
        table.append(frame(range(4), DAY1, n=1).unionByName(frame(range(4), DAY2, n=1)))
        return table

    return make("whole"), make("one_day")


@pytest.mark.parametrize("on_driver", [False, True], ids=["frame", "arrow"])
def test_a_partition_merge_gives_what_a_whole_table_merge_gives_and_leaves_other_days_alone(
    two_days, frame, on_driver
):
    whole, one_day = two_days
    other_day_files = day_files(one_day, DAY2)
    source = frame([0, 1, 2, 8, 9], DAY1, n=5)
    clauses = dict(
        on=["event_date", "event_id"],
        delete_condition="source.event_id IN ('e0', 'e8')",
        update_condition="target.n = 1 AND source.event_id <> 'e2'",
        insert_condition="source.event_id <> 'e8'",
    )
    expected = whole.merge(source, **clauses)
    got = one_day.merge(source.toArrow() if on_driver else source, partition={"event_date": DAY1}, **clauses)

    assert got == expected == {"inserted": 1, "updated": 1, "deleted": 1}
    assert contents(one_day) == contents(whole)
    assert contents(one_day)[("e1", DAY1)] == 5 and ("e0", DAY1) not in contents(one_day)
    assert day_files(one_day, DAY2) == other_day_files


def test_only_the_partitions_rows_can_match(spark, engine, storage_root, frame):
    """The same key on another day is another row: it is neither updated nor in the way."""
    table = Table.create(spark, str(storage_root / "t"), SCHEMA, partition_by=["event_date"], engine=engine)
    table.append(frame([1], DAY2, n=1))
    assert table.merge(frame([1], DAY1, n=7), on="event_id", partition={"event_date": DAY1}) == {
        "inserted": 1,
        "updated": 0,
        "deleted": 0,
    }
    assert contents(table) == {("e1", DAY1): 7, ("e1", DAY2): 1}


def test_source_rows_outside_the_partition_are_refused_and_nothing_lands(events, frame):
    events.append(frame(range(2), DAY1))
    version = events.version()
    source = frame([0], DAY1, n=3).unionByName(frame([5], DAY2, n=3))
    with pytest.raises(MedallionError, match="outside partition") as failure:
        events.merge(source, on="event_id", partition={"event_date": DAY1})
    assert "\n" not in str(failure.value)
    assert events.version() == version


def test_a_partition_that_is_not_a_partition_column_is_refused(events, frame):
    with pytest.raises(MedallionError, match="partition columns"):
        events.merge(frame([0]), on="event_id", partition={"event_id": "e0"})


def test_several_source_rows_for_one_target_row_are_refused(events, frame, engine):
    events.append(frame(range(2), DAY1))
    twice = frame([1], DAY1, n=2).unionByName(frame([1], DAY1, n=3))
    with pytest.raises(MedallionError, match="make the source unique") as failure:
        events.merge(twice, on="event_id", partition={"event_date": DAY1})
    assert "\n" not in str(failure.value)
    assert {r.n for r in events.read().collect()} == {1}


def test_a_merge_that_changes_nothing_commits_nothing_unless_a_txn_is_recorded(events, frame):
    events.append(frame(range(3), DAY1, n=1))
    version = events.version()
    same = frame(range(3), DAY1, n=1)
    assert events.merge(
        same, on="event_id", update_condition="target.n <> source.n", partition={"event_date": DAY1}
    ) == {
        "inserted": 0,
        "updated": 0,
        "deleted": 0,
    }
    assert events.version() == version
    events.merge(
        same,
        on="event_id",
        update_condition="target.n <> source.n",
        txn=("app", 4),
        partition={"event_date": DAY1},
    )
    assert events.last_txn_version("app") == 4
    assert (
        events.merge(frame([7], DAY1), on="event_id", txn=("app", 4), partition={"event_date": DAY1})[
            "inserted"
        ]
        == 0
    )
    assert events.read().count() == 3


def _merge_while(events, write_meanwhile, frame, gate) -> BaseException | None:
    """A one-day merge, held after its snapshot while ``write_meanwhile`` commits."""
    held = gate()
    source = held.holding(frame([0, 10], DAY1, n=9))
    _, error = held.run(
        lambda: events.merge(source, on="event_id", partition={"event_date": DAY1}), write_meanwhile
    )
    return error


def test_commits_to_other_partitions_do_not_make_a_partition_merge_start_over(
    spark, engine, table_path, frame, gate
):
    events = Table.create(spark, table_path, SCHEMA, partition_by=["event_date"], engine=engine)
    events.append(frame(range(3), DAY1, n=1))
    events.max_attempts = 1  # starting over would fail: only stepping over the commit succeeds
    other = Table.at(spark, table_path, engine=engine)
    assert _merge_while(events, lambda: other.append(frame([5, 6], DAY2)), frame, gate) is None
    assert contents(events) == {
        ("e0", DAY1): 9,
        ("e1", DAY1): 1,
        ("e2", DAY1): 1,
        ("e10", DAY1): 9,
        ("e5", DAY2): 1,
        ("e6", DAY2): 1,
    }


def test_a_commit_to_the_same_partition_makes_it_start_over_and_both_land(
    spark, engine, table_path, frame, gate
):
    events = Table.create(spark, table_path, SCHEMA, partition_by=["event_date"], engine=engine)
    events.append(frame(range(3), DAY1, n=1))
    other = Table.at(spark, table_path, engine=engine)

    events.max_attempts = 1
    failure = _merge_while(events, lambda: other.append(frame([5], DAY1)), frame, gate)
    assert isinstance(failure, ConcurrentWriteError)
    assert ("e10", DAY1) not in contents(events)  # nothing torn

    events.max_attempts = 5
    merged_meanwhile = _merge_while(
        events, lambda: other.merge(frame([1, 11], DAY1, n=2), on="event_id"), frame, gate
    )
    assert merged_meanwhile is None
    assert contents(events) == {
        ("e0", DAY1): 9,
        ("e1", DAY1): 2,
        ("e2", DAY1): 1,
        ("e5", DAY1): 1,
        ("e10", DAY1): 9,
        ("e11", DAY1): 2,
    }


def test_which_concurrent_commits_conflict_with_rewriting_a_partition(spark, storage_root, frame):
    from medallion.tables.delta_rs.log import filesystem
    from medallion.tables.partition_merge import partition_conflict

    events = Table.create(spark, str(storage_root / "t"), SCHEMA, partition_by=["event_date"], engine="rs")
    events.append(frame([0], DAY1))
    fs, root = filesystem(events.path)
    read = events.version()

    events.append(frame([1], DAY2))
    assert partition_conflict(fs, root, read, events.version(), {"event_date": DAY1}) is None
    events.delete("event_id = 'e1'")
    assert partition_conflict(fs, root, read, events.version(), {"event_date": DAY1}) is None

    events.append(frame([2], DAY1))
    assert "changed partition event_date=2026-11-20" in partition_conflict(
        fs, root, read, events.version(), {"event_date": DAY1}
    )
    read = events.version()
    widened = frame([3], DAY2).withColumn("extra", F.lit("x"))
    events.append(widened, merge_schema=True)
    assert "metadata" in partition_conflict(fs, root, read, events.version(), {"event_date": DAY1})


def test_replace_partition_rebuilds_when_the_partition_changes_under_it(spark, storage_root, frame):
    """rs engine: ``build`` runs after the snapshot; a commit to the partition meanwhile makes
    it run again on the new state, and a commit to another day is stepped over."""
    table = Table.create(spark, str(storage_root / "r"), SCHEMA, partition_by=["event_date"], engine="rs")
    table.append(frame(range(3), DAY1, n=1).unionByName(frame(range(2), DAY2, n=1)))
    calls = []

    def build():
        calls.append(table.version())
        if len(calls) == 1:
            table.append(frame([7], DAY1, n=1))  # a concurrent writer into the same day
            table.append(frame([8], DAY2, n=1))  # and into another
        # The day rebuilt from what the table held when build was called.
        return table.read().where(F.col("event_date") == F.lit(DAY1)).withColumn("n", F.lit(2).cast("long"))

    assert table.replace_partition(build, {"event_date": DAY1}) == 4
    assert len(calls) == 2
    assert contents(table) == {
        **{(f"e{i}", DAY1): 2 for i in (0, 1, 2, 7)},
        **{(f"e{i}", DAY2): 1 for i in (0, 1, 8)},
    }


def test_replace_partition_refuses_rows_outside_it(spark, storage_root, frame):
    table = Table.create(spark, str(storage_root / "r"), SCHEMA, partition_by=["event_date"], engine="rs")
    table.append(frame(range(2), DAY1))
    version = table.version()
    with pytest.raises(MedallionError) as err:
        table.replace_partition(
            lambda: frame([5, 6], DAY2).unionByName(frame([7], DAY1)), {"event_date": DAY1}
        )
    assert str(err.value) == (
        f"replace partition of {table.path}: 2 source row(s) lie outside partition event_date={DAY1}; "
        "make build return only its rows"
    )
    assert table.version() == version
    with pytest.raises(MedallionError, match=r"^replace partition of .*: partition=\{n=1\} must give values"):
        table.replace_partition(lambda: frame([5], DAY1), {"n": 1})
