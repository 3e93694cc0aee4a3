"""What a continuous query writes: every record scored or rejected, none dropped.

Continuous mode has no foreachBatch, so nothing reaches silver.quarantine; the map-only plan
cannot split one stream into two either. Each row therefore leaves the query once, judged:

    judged = judge(scored)                       # + reasons: why the row is not a prediction
    kafka_records(judged, "scores", "scores.quarantine")  # -> topic, key, value

A row is rejected when its record did not parse (silver's reasons) or its score is not a
probability (:func:`medallion.model.guard.score_problem`). A rejected row has no score and
no decision; with the Kafka sink it goes to the quarantine topic as a silver.quarantine
row (feed, reasons, raw, source_file, quarantined_at), a scored one to the scores topic.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf

from medallion.model.guard import QUARANTINE_FEED, score_problem

#: What a memory or console sink shows of a judged row.
SHOWN_COLUMNS = (
    "event_id", "card_id", "event_ts", "score", "decision",
    "model_name", "model_version", "scored_by", "reasons",
)  # fmt: skip

#: The scores topic's record (README "Kafka").
SCORE_FIELDS = ("event_id", "score", "decision", "model_name", "model_version", "scored_at")


def judge(scored: DataFrame) -> DataFrame:
    """``scored`` (features, scores and, for parsed records, silver's ``reasons`` and ``raw``)
    with ``reasons`` covering the score too, ``rejected_feed`` naming what failed ('events':
    the record, 'predictions': the score), and score and decision null on a rejected row."""
    parsed = F.col("reasons") if "reasons" in scored.columns else F.array().cast("array<string>")
    problem = score_problem()
    unparsed = F.size(parsed) > 0
    raw = F.col("raw") if "raw" in scored.columns else F.lit(None).cast("string")
    scored_row = F.to_json(F.struct(*[F.col(c) for c in scored.columns if c not in ("reasons", "raw")]))
    # All from the input's columns at once. A record that did not parse was scored on nulls:
    # its score problem is no news.
    judged = scored.withColumns(
        {
            "rejected_feed": F.when(unparsed, F.lit("events")).when(
                problem.isNotNull(), F.lit(QUARANTINE_FEED)
            ),
            "reasons": F.when(unparsed | problem.isNull(), parsed).otherwise(F.array(problem)),
            "raw": F.when(unparsed, raw).when(problem.isNotNull(), scored_row),
        }
    )
    kept = ~_rejected()
    return judged.withColumns(
        {
            "score": F.when(kept, F.col("score")),
            "decision": F.when(kept, F.col("decision")),
            "scored_at": wall_clock(F.col("score")),
        }
    )


def wall_clock(any_column: Column) -> Column:
    """The time a row is evaluated. Continuous mode refuses current_timestamp() (its plan runs
    for as long as the query does), so the clock is read in a Python worker, where the
    continuous path's profile lookup already runs; the column passed in only gives the UDF
    its rows."""

    @pandas_udf("timestamp")
    def now(rows: pd.Series) -> pd.Series:
        return pd.Series(pd.Timestamp.now(tz="UTC"), index=rows.index)

    return now.asNondeterministic()(any_column)


def _rejected() -> Column:
    return F.col("rejected_feed").isNotNull()


def shown_rows(judged: DataFrame) -> DataFrame:
    """A judged frame as a memory or console sink shows it: rejected rows carry their reasons."""
    return judged.select(*[c for c in SHOWN_COLUMNS if c in judged.columns])


def kafka_records(judged: DataFrame, scores_topic: str, quarantine_topic: str) -> DataFrame:
    """A judged frame as Kafka sink records: ``topic`` (per row), ``key`` (the event id) and
    ``value`` (the score record, or the silver.quarantine row of a rejected one)."""
    source_file = F.col("source_file") if "source_file" in judged.columns else F.lit(None).cast("string")
    quarantined = F.struct(
        F.col("rejected_feed").alias("feed"),
        "reasons",
        "raw",
        source_file.alias("source_file"),
        F.col("scored_at").alias("quarantined_at"),
    )
    return judged.select(
        F.when(_rejected(), F.lit(quarantine_topic)).otherwise(F.lit(scores_topic)).alias("topic"),
        F.col("event_id").alias("key"),
        F.when(_rejected(), F.to_json(quarantined))
        .otherwise(F.to_json(F.struct(*SCORE_FIELDS)))
        .alias("value"),
    )
