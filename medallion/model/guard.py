"""Only probabilities reach a prediction table: a null, NaN, infinite or out-of-[0, 1] score never does.

Spark orders NaN above every number, so ``score >= threshold`` holds for NaN: a model that
returns NaN would flag the row as fraud. The nightly batch stops instead (nothing written);
the stream sets such rows aside in silver.quarantine with the reason and goes on.

Usage::

    from medallion.model.guard import ScoreGuard, score_problem

    scored.where(score_problem().isNotNull())              # the rows no table may hold, and why

    # the batch: the write itself fails on a bad score, then one line says how many and whose
    with ScoreGuard.stopping(scored, "gold.predictions_batch"):
        table.overwrite(ScoreGuard.refusing(scored), where=...)

    # the stream: split on the driver after the one job that scores the micro-batch
    rows = ScoreGuard.checked(scored).select(*columns, *ScoreGuard.COLUMNS).toArrow()
    valid, invalid = ScoreGuard.split(rows)
    quarantine.append(ScoreGuard.quarantine_rows(invalid), txn=...)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from medallion.errors import MedallionError
from medallion.schemas import QUARANTINE_SCHEMA

# Where a quarantined score row is filed in silver.quarantine (ingest files its rows under
# their feed, 'events' or 'labels'): these rows were valid events the model could not score.
QUARANTINE_FEED = "predictions"
# In the Spark error a refused batch write fails with: tells it from any other failure.
MARKER = "medallion: score not a probability"

# A pandas UDF hands Spark a model's NaN as null: "missing" is what a NaN model shows there.
_KINDS = ("missing (null or NaN)", "not a number", "infinite", "out of [0, 1]")


def _kind(score: Column) -> Column:
    return (
        F.when(score.isNull(), F.lit(_KINDS[0]))
        .when(F.isnan(score), F.lit(_KINDS[1]))
        .when(F.abs(score) == F.lit(float("inf")), F.lit(_KINDS[2]))
        .when((score < 0) | (score > 1), F.lit(_KINDS[3]))
    )


def score_problem(
    score: str = "score", model_name: str = "model_name", model_version: str = "model_version"
) -> Column:
    """Why the row's score may not be stored, naming the model version; null when it may."""
    value = F.col(score)
    model = F.concat(F.col(model_name), F.lit(" v"), F.col(model_version))
    shown = F.coalesce(value.cast("string"), F.lit("null"))
    return F.when(
        _kind(value).isNotNull(),
        F.concat(F.lit("score "), _kind(value), F.lit(": "), shown, F.lit(" from "), model),
    )


class ScoreGuard:
    """The two ways a scoring job keeps bad scores out: refuse the write, or quarantine the rows."""

    PROBLEM, RAW, SOURCE = "score_problem", "score_raw", "score_source_file"
    COLUMNS = (PROBLEM, RAW, SOURCE)

    @staticmethod
    def refusing(scored: DataFrame) -> DataFrame:
        """``scored`` whose write fails (a Spark error holding :data:`MARKER`) at its first bad score."""
        problem = score_problem()
        return scored.withColumn(
            "score",
            F.when(problem.isNull(), F.col("score")).otherwise(
                F.raise_error(F.concat(F.lit(MARKER + ": "), problem))
            ),
        )

    @staticmethod
    @contextmanager
    def stopping(scored: DataFrame, table: str) -> Iterator[None]:
        """Turn the failed write of :meth:`refusing` into one line: how many rows, which model."""
        try:
            yield
        except Exception as exc:
            if MARKER not in str(exc):
                raise
            raise MedallionError(_summary(scored, table)) from None

    @classmethod
    def checked(cls, scored: DataFrame) -> DataFrame:
        """``scored`` plus :attr:`PROBLEM` (null when the score is fine) and, for a bad row only,
        :attr:`RAW`: the row as JSON (its features and what the model returned) and :attr:`SOURCE`,
        its landing file."""
        problem = score_problem()
        source = F.col("source_file") if "source_file" in scored.columns else F.lit(None).cast("string")
        return scored.withColumns(
            {
                cls.PROBLEM: problem,
                cls.RAW: F.when(
                    problem.isNotNull(), F.to_json(F.struct(*[F.col(c) for c in scored.columns]))
                ),
                cls.SOURCE: F.when(problem.isNotNull(), source),
            }
        )

    @classmethod
    def split(cls, rows: pa.Table) -> tuple[pa.Table, pa.Table]:
        """Rows of :meth:`checked` on the driver, as (valid, invalid); valid without the guard's columns."""
        bad = pc.is_valid(rows.column(cls.PROBLEM))
        valid = rows.filter(pc.invert(bad))
        return valid.drop_columns(list(cls.COLUMNS)), rows.filter(bad)

    @classmethod
    def quarantine_rows(cls, invalid: pa.Table) -> pa.Table:
        """Invalid rows of :meth:`split` as silver.quarantine rows."""
        from medallion.tables.arrow import arrow_schema

        n = invalid.num_rows
        column = invalid.column
        now = datetime.now(UTC)
        return pa.Table.from_pydict(
            {
                "feed": [QUARANTINE_FEED] * n,
                "reasons": [[reason] for reason in column(cls.PROBLEM).to_pylist()],
                "raw": column(cls.RAW).to_pylist(),
                "source_file": column(cls.SOURCE).to_pylist(),
                "ingested_at": column("ingested_at").to_pylist()
                if "ingested_at" in invalid.column_names
                else [None] * n,
                "quarantined_at": [now] * n,
            },
            schema=arrow_schema(QUARANTINE_SCHEMA),
        )


def _summary(scored: DataFrame, table: str) -> str:
    value = F.col("score")
    counts = (
        scored.where(_kind(value).isNotNull())
        .groupBy(F.concat(F.col("model_name"), F.lit(" v"), F.col("model_version")).alias("model"))
        .agg(
            F.count(F.lit(1)).alias("rows"),
            *[F.count_if(_kind(value) == kind).alias(kind) for kind in _KINDS],
        )
        .collect()
    )
    if not counts:  # the rows scored differently when counted: still nothing was written
        return f"scores that are not probabilities stopped the write to {table}; nothing was written"
    parts = []
    for row in counts:
        kinds = ", ".join(f"{row[kind]} {kind}" for kind in _KINDS if row[kind])
        parts.append(f"{row['rows']} rows scored by {row['model']} are not probabilities ({kinds})")
    return (
        "; ".join(parts) + f": nothing was written to {table}; "
        "roll the champion back (medallion model rollback) or promote a model that returns probabilities"
    )
