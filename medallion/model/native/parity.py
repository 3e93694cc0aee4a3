"""Parity: the compiled model's scores against the pyfunc's on the same rows.

Usage::

    parity = check_parity(spark, native, pyfunc_model, rows, threshold=0.5)   # in Spark
    parity = check_row_parity(RowScorer(native), pyfunc_model, rows, 0.5)     # in process
    parity.passed, parity.max_abs_diff, parity.describe()
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medallion.model.native.expressions import NativeModel, is_missing
from medallion.model.native.rows import RowScorer

#: Scores from the two paths must agree to this, and give the same decisions.
PARITY_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Parity:
    """Native scores against the pyfunc's on the same rows."""

    rows: int
    max_abs_diff: float
    decisions_equal: bool

    @property
    def passed(self) -> bool:
        return self.rows > 0 and self.max_abs_diff <= PARITY_TOLERANCE and self.decisions_equal

    def describe(self) -> str:
        verdict = "equal" if self.passed else "NOT equal"
        return (
            f"native scores {verdict} to the pyfunc's on {self.rows} rows "
            f"(max |diff| {self.max_abs_diff:.3g}, decisions {'same' if self.decisions_equal else 'differ'})"
        )


def edge_rows(rows: pd.DataFrame, feature_columns: Sequence[str], categorical: Sequence[str]) -> pd.DataFrame:
    """Rows that reach every missing-value branch: each feature null in turn, and unseen categories."""
    base = rows[list(feature_columns)].head(3)
    variants = []
    for name in feature_columns:
        copy = base.copy()
        copy[name] = None if name in categorical else np.nan
        variants.append(copy)
    unseen = base.copy()
    for name in categorical:
        unseen[name] = "__never_seen__"
    variants.append(unseen)
    return pd.concat(variants, ignore_index=True)


def check_parity(
    spark,
    native: NativeModel,
    pyfunc_model,
    rows: pd.DataFrame,
    threshold: float,
    feature_schema=None,
) -> Parity:
    """Score ``rows`` both ways (the pyfunc in process, the expressions in Spark) and compare."""
    from pyspark.sql import functions as F

    from medallion.schemas import FEATURE_SCHEMA
    from medallion.spark import session_conf

    schema = feature_schema if feature_schema is not None else FEATURE_SCHEMA
    names = schema.fieldNames()
    frame = rows[names].reset_index(drop=True)
    if frame.empty:
        return Parity(0, math.inf, False)
    expected = np.asarray(pyfunc_model.predict(frame), dtype="float64").ravel()
    records = [
        tuple(None if is_missing(v) else v for v in row) for row in frame.itertuples(index=False, name=None)
    ]
    spark_rows = spark.createDataFrame(records, schema).withColumn("_row", F.monotonically_increasing_id())
    # A few thousand rows: interpreted projections are quick, and Spark does not log the
    # generated class it could not compile (a model's trees outgrow Java's 64 KB method).
    with session_conf(spark, {"spark.sql.codegen.wholeStage": "false"}):
        scored = native.with_score(spark_rows, "score").select("_row", "score").toPandas()
    got = scored.sort_values("_row")["score"].to_numpy(dtype="float64")
    return compare_scores(expected, got, threshold)


def check_row_parity(scorer: RowScorer, pyfunc_model, rows: pd.DataFrame, threshold: float) -> Parity:
    """:func:`check_parity` for the in-process evaluator: the pyfunc and ``scorer`` on each row."""
    from medallion.schemas import FEATURE_COLUMNS

    frame = rows[list(FEATURE_COLUMNS)].reset_index(drop=True)
    if frame.empty:
        return Parity(0, math.inf, False)
    expected = np.asarray(pyfunc_model.predict(frame), dtype="float64").ravel()
    records = [
        {k: (None if is_missing(v) else v) for k, v in row.items()} for row in frame.to_dict("records")
    ]
    got = np.array([scorer(record) for record in records], dtype="float64")
    return compare_scores(expected, got, threshold)


def compare_scores(expected: np.ndarray, got: np.ndarray, threshold: float) -> Parity:
    """Equal to :data:`PARITY_TOLERANCE`, NaN where NaN, and the same decisions."""
    if len(got) != len(expected):
        return Parity(len(expected), math.inf, False)
    same_nan = np.isnan(got) == np.isnan(expected)
    diff = np.abs(np.where(np.isnan(got) | np.isnan(expected), 0.0, got - expected))
    max_diff = float(diff.max()) if same_nan.all() else math.inf
    decisions = bool(((got >= threshold) == (expected >= threshold)).all())
    return Parity(len(expected), max_diff, decisions)
