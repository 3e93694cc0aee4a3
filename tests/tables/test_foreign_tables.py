"""Tables written by delta-spark as a Databricks user would: the embedded engine reads them
exactly as delta-spark does, or refuses them with one line that says to use delta.engine=spark."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession

from medallion.errors import MedallionError
from medallion.tables import Table
from medallion.tables.engine import HOW_TO_GET_JARS, _spark_engine_problem

pytestmark = pytest.mark.delta_spark


@pytest.fixture(autouse=True)
def delta_spark(spark) -> None:
    # make setup fetches the jars: their absence is a failure, never a silently untested path.
    problem = _spark_engine_problem(spark)
    assert problem is None, f"{problem}: {HOW_TO_GET_JARS}"


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "foreign")


def same_rows(actual: DataFrame, expected: DataFrame) -> None:
    """Same columns, types and rows (as a multiset: no order is promised)."""
    assert [(f.name, f.dataType) for f in actual.schema] == [(f.name, f.dataType) for f in expected.schema]
    assert Counter(map(tuple, actual.collect())) == Counter(map(tuple, expected.collect()))


def delta_spark_read(spark: SparkSession, path: str, version: int | None = None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path)


def assert_read_like_delta_spark(spark: SparkSession, path: str, engines=("rs", "spark")) -> None:
    for engine in engines:
        same_rows(Table.at(spark, path, engine=engine).read(), delta_spark_read(spark, path))


def refused(check, path: str, feature: str) -> None:
    """``check()`` raises a one-line MedallionError naming the table, the feature and the remedy."""
    with pytest.raises(MedallionError, match=r"delta\.engine=spark") as raised:
        check()
    message = str(raised.value)
    assert "\n" not in message
    assert path in message and feature in message


# --------------------------------------------------------------------------- refused


def test_deletion_vectors_in_use_are_refused_on_every_path(spark, path):
    spark.sql(
        f"CREATE TABLE delta.`{path}` (id BIGINT, name STRING) USING delta "
        "TBLPROPERTIES ('delta.enableDeletionVectors' = true)"
    )
    spark.range(20).selectExpr("id", "CAST(id AS STRING) AS name").coalesce(1).write.format("delta").mode(
        "append"
    ).save(path)
    # Enabled but not yet used: nothing to apply, the table reads as it is.
    assert_read_like_delta_spark(spark, path)
    opened = Table.at(spark, path, engine="rs")

    spark.sql(f"DELETE FROM delta.`{path}` WHERE id % 3 = 0")  # marks rows in a vector
    assert delta_spark_read(spark, path).count() == 13

    refused(lambda: Table.at(spark, path, engine="rs").read(), path, "deletion vectors")
    # A handle opened before the vector appeared refuses too, before touching the old files.
    some = spark.createDataFrame([(1, "one")], "id BIGINT, name STRING")
    for use in (
        opened.read,
        opened.read_stream,
        lambda: opened.merge(some, on="id"),
        lambda: opened.overwrite(some, where="id = 1"),
        lambda: opened.delete("id = 2"),
    ):
        refused(use, path, "deletion vectors")

    assert_read_like_delta_spark(spark, path, engines=("spark",))


def test_deletion_vectors_purged_read_again_but_not_their_versions(spark, path):
    spark.sql(
        f"CREATE TABLE delta.`{path}` (id BIGINT) USING delta TBLPROPERTIES ('delta.enableDeletionVectors' = true)"
    )
    spark.range(10).coalesce(1).write.format("delta").mode("append").save(path)
    spark.sql(f"DELETE FROM delta.`{path}` WHERE id < 4")
    with_vectors = Table.at(spark, path, engine="spark").version()
    spark.sql(f"REORG TABLE delta.`{path}` APPLY (PURGE)")  # rewrites the files without vectors

    assert_read_like_delta_spark(spark, path)
    assert Table.at(spark, path, engine="rs").read().count() == 6
    refused(lambda: Table.at(spark, path, engine="rs").read(version=with_vectors), path, "deletion vectors")


@pytest.mark.parametrize("mode", ["name", "id"])
def test_column_mapping_is_refused(spark, path, mode):
    spark.sql(
        f"CREATE TABLE delta.`{path}` (id BIGINT, name STRING) USING delta "
        f"TBLPROPERTIES ('delta.columnMapping.mode' = '{mode}')"
    )
    spark.sql(f"INSERT INTO delta.`{path}` VALUES (1, 'a'), (2, 'b')")
    spark.sql(f"ALTER TABLE delta.`{path}` RENAME COLUMN name TO label")

    refused(lambda: Table.at(spark, path, engine="rs").read(), path, f"column mapping (mode {mode})")
    assert_read_like_delta_spark(spark, path, engines=("spark",))
    labels = Table.at(spark, path, engine="spark").read().select("label").collect()
    assert sorted(r.label for r in labels) == ["a", "b"]


def test_a_reader_feature_the_embedded_engine_does_not_know_is_refused(spark, path):
    spark.sql(
        f"CREATE TABLE delta.`{path}` (id INT) USING delta TBLPROPERTIES ('delta.enableTypeWidening' = true)"
    )
    spark.sql(f"INSERT INTO delta.`{path}` VALUES (1)")
    spark.sql(f"ALTER TABLE delta.`{path}` ALTER COLUMN id TYPE BIGINT")

    refused(lambda: Table.at(spark, path, engine="rs"), path, "typeWidening")
    assert_read_like_delta_spark(spark, path, engines=("spark",))


def test_the_embedded_data_source_refuses_too(spark, path):
    from pyspark.errors import AnalysisException

    from medallion.tables.delta_rs.datasource import register

    spark.sql(
        f"CREATE TABLE delta.`{path}` (id BIGINT) USING delta TBLPROPERTIES ('delta.columnMapping.mode' = 'name')"
    )
    spark.sql(f"INSERT INTO delta.`{path}` VALUES (1)")
    # Planned in a Python worker: Spark wraps the MedallionError, its line kept.
    with pytest.raises(AnalysisException, match=r"uses column mapping .*: set delta\.engine=spark"):
        spark.read.format(register(spark)).load(path).collect()


# --------------------------------------------------------------------------- honoured


def test_timestamp_ntz_reads_as_delta_spark_reads_it(spark, path):
    spark.sql(f"CREATE TABLE delta.`{path}` (id BIGINT, local_ts TIMESTAMP_NTZ) USING delta")
    spark.sql(
        f"INSERT INTO delta.`{path}` VALUES (1, TIMESTAMP_NTZ'2026-11-20 08:00:00'), "
        "(2, TIMESTAMP_NTZ'2026-03-29 02:30:00.123456'), (3, NULL)"
    )
    assert_read_like_delta_spark(spark, path)
    assert Table.at(spark, path, engine="rs").schema["local_ts"].dataType.typeName() == "timestamp_ntz"


def test_a_checkpointed_log_reads_as_delta_spark_reads_it(spark, path):
    spark.sql(
        f"CREATE TABLE delta.`{path}` (id BIGINT, name STRING) USING delta "
        "TBLPROPERTIES ('delta.checkpointInterval' = 2)"
    )
    for i in range(5):
        spark.sql(f"INSERT INTO delta.`{path}` VALUES ({i}, 'n{i}')")
    spark.sql(f"DELETE FROM delta.`{path}` WHERE id = 1")  # a remove replayed across the checkpoint
    assert sorted((Path(path) / "_delta_log").glob("*.checkpoint.parquet"))

    assert_read_like_delta_spark(spark, path)
    same_rows(Table.at(spark, path, engine="rs").read(version=3), delta_spark_read(spark, path, version=3))


def test_a_v2_checkpoint_reads_as_delta_spark_reads_it(spark, path):
    spark.sql(
        f"CREATE TABLE delta.`{path}` (id BIGINT) USING delta "
        "TBLPROPERTIES ('delta.checkpointPolicy' = 'v2', 'delta.checkpointInterval' = 2)"
    )
    for i in range(5):
        spark.sql(f"INSERT INTO delta.`{path}` VALUES ({i})")
    assert sorted((Path(path) / "_delta_log").glob("*.checkpoint.*.json"))

    assert_read_like_delta_spark(spark, path)


def test_a_column_added_by_merge_schema_reads_as_delta_spark_reads_it(spark, path):
    spark.sql(f"CREATE TABLE delta.`{path}` (id BIGINT, name STRING) USING delta")
    spark.sql(f"INSERT INTO delta.`{path}` VALUES (1, 'a')")
    added = spark.createDataFrame([(2, "b", 2.5)], "id BIGINT, name STRING, score DOUBLE")
    added.write.format("delta").mode("append").option("mergeSchema", "true").save(path)

    assert_read_like_delta_spark(spark, path)
    rows = {r.id: r.score for r in Table.at(spark, path, engine="rs").read().collect()}
    assert rows == {1: None, 2: 2.5}
