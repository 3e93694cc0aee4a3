"""Fixtures for the table contract suite: one parametrized ``engine`` per engine present."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DateType,
    DecimalType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from medallion.tables.engine import HOW_TO_GET_JARS, _spark_engine_problem

SCHEMA = StructType(
    [
        StructField("event_id", StringType(), False),
        StructField("amount", DecimalType(18, 2), True),
        StructField("n", LongType(), True),
        StructField("event_ts", TimestampType(), True),
        StructField("event_date", DateType(), False),
    ]
)


def rows(ids, day: date = date(2026, 11, 20), n: int = 1) -> list[tuple]:
    return [
        (
            f"e{i}",
            Decimal(f"{i}.50"),
            n,
            datetime(day.year, day.month, day.day, 8, 0, i % 60, tzinfo=UTC),
            day,
        )
        for i in ids
    ]


@pytest.fixture(params=["rs", "spark"])
def engine(request, spark) -> str:
    if request.param == "spark":
        # make setup fetches the jars: their absence fails the spark cases instead of skipping them.
        problem = _spark_engine_problem(spark)
        assert problem is None, f"{problem}: {HOW_TO_GET_JARS}"
    return request.param


@pytest.fixture
def table_path(storage_root) -> str:
    return str(storage_root / "tables" / "silver" / "events")


@pytest.fixture
def frame(spark):
    def make(ids, day: date = date(2026, 11, 20), n: int = 1):
        return spark.createDataFrame(rows(ids, day, n), SCHEMA)

    return make


@pytest.fixture
def events(spark, engine, table_path):
    from medallion.tables import Table

    return Table.create(spark, table_path, SCHEMA, partition_by=["event_date"], engine=engine)


class Gate:
    """A point inside a Spark job where one row waits until the test lets it through.

    Concurrency tests need "the other writer commits while this one computes". Sleeping
    for that races the job's planning on a loaded machine; a gate makes it certain. The
    UDF runs in a Python worker process, so entering and opening are files. Only the
    first row to arrive waits, which leaves a core free for the other writer.
    """

    def __init__(self, directory: Path):
        directory.mkdir(parents=True)
        self._entered = str(directory / "entered")
        self._opened = str(directory / "opened")

    def holding(self, df: DataFrame, column: str = "event_id") -> DataFrame:
        """``df`` unchanged, except that computing it stops at the gate until it opens."""
        entered, opened = self._entered, self._opened

        def pass_through(value):
            try:
                os.close(os.open(entered, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return value
            deadline = time.monotonic() + 120
            while not os.path.exists(opened) and time.monotonic() < deadline:
                time.sleep(0.02)
            return value

        return df.withColumn(column, F.udf(pass_through, "string")(column))

    def run(self, held: Callable[[], object], meanwhile: Callable[[], object]):
        """Start ``held``; once it reaches the gate run ``meanwhile``, then open the gate.

        Returns ``(result, error)`` of ``held``.
        """
        outcome: dict[str, object] = {}

        def target():
            try:
                outcome["result"] = held()
            except BaseException as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=target)
        worker.start()
        deadline = time.monotonic() + 120
        while not os.path.exists(self._entered) and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            if not os.path.exists(self._entered):
                raise AssertionError(f"the held writer never reached the gate: {outcome}")
            meanwhile()
        finally:
            Path(self._opened).touch()
            worker.join()
        return outcome.get("result"), outcome.get("error")


@pytest.fixture
def gate(tmp_path) -> Callable[[], Gate]:
    """A fresh :class:`Gate` per call."""
    numbers = itertools.count()
    return lambda: Gate(tmp_path / "gates" / str(next(numbers)))
