"""Fixtures for the table contract suite: one parametrized ``engine`` per engine present."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
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
        problem = _spark_engine_problem(spark)
        if problem:
            pytest.skip(f"delta-spark jars not on the classpath: {HOW_TO_GET_JARS}")
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
