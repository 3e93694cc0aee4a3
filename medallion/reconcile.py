"""Fold the speed layer back into the batch layer: one serving table and an audit of their agreement.

Usage::

    from medallion.reconcile import Reconciler

    audit = Reconciler(settings, spark).run(date(2026, 11, 20))
    audit.agreed, audit.speed_only, audit.rejected_speed

For one ``event_date``, gold.predictions (serving, one row per ``event_id``) ends with:

- the batch row wherever the batch scored the event (batch wins; ``missing_in_speed`` when
  the stream never saw it);
- the speed row for events the batch has not covered yet (``source = 'speed'``);
- nothing for speed rows whose event silver does not hold (quarantined or a duplicate):
  they are removed and counted as ``rejected_speed``.

Serving is changed only by one keyed merge per run, confined to the day, never by a
partition overwrite: a stream upserting speed rows into that day at the same time loses
nothing (the merge is planned again on the new snapshot), and the stream's commits to
other days do not disturb it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from pyspark.sql import Column, DataFrame, Observation, SparkSession, Window
from pyspark.sql import functions as F

from medallion.config import Settings
from medallion.observation import observed
from medallion.schemas import (
    PREDICTIONS_BATCH_SCHEMA,
    PREDICTIONS_SPEED_SCHEMA,
    RECONCILIATION_AUDIT_SCHEMA,
    SERVING_SCHEMA,
    SILVER_EVENTS_SCHEMA,
)
from medallion.spark import session_conf
from medallion.tables import Lakehouse, Table
from medallion.tables.table import driver_rows

SPEED_COMPARED = ("event_id", "event_date", "score", "decision", "model_version", "scored_at", "batch_id")

# Spark pre-sorts each map task's rows to keep only the newest per event before the
# shuffle (InsertWindowGroupLimit). A speed event is scored twice only after a replay, so
# that sort removes almost nothing; it cost 0.2-0.6 s of a 6 s run on a 2M-event day.
NO_PARTIAL_DEDUPE = {"spark.sql.optimizer.windowGroupLimitThreshold": "-1"}


def latest_speed_rows(speed: DataFrame) -> DataFrame:
    """One speed row per event: the last one scored (a replayed or re-landed event scores twice)."""
    newest_first = Window.partitionBy("event_id").orderBy(F.col("scored_at").desc(), F.col("batch_id").desc())
    return speed.withColumn("_rank", F.row_number().over(newest_first)).where("_rank = 1").drop("_rank")


def latest_audits(audit: DataFrame) -> DataFrame:
    """One gold.reconciliation_audit row per ``event_date``: the newest reconciliation."""
    newest = Window.partitionBy("event_date").orderBy(F.col("reconciled_at").desc())
    return audit.withColumn("_rank", F.row_number().over(newest)).where("_rank = 1").drop("_rank")


def compare(batch: DataFrame, speed: DataFrame, silver_ids: DataFrame, tolerance: float) -> DataFrame:
    """Full outer join of one day's batch and speed predictions, with one ``outcome`` per event.

    Outcomes: ``agreed``, ``disagreed_same_version``, ``disagreed_other_version``,
    ``batch_only``, ``speed_only`` (silver holds the event, the batch has not scored it),
    ``rejected`` (silver does not hold the event).
    """
    b = batch.select(
        "event_id",
        "event_date",
        F.col("score").alias("batch_score"),
        F.col("decision").alias("batch_decision"),
        F.col("model_version").alias("batch_version"),
        F.col("scored_at").alias("batch_scored_at"),
    )
    s = speed.select(
        "event_id",
        F.col("event_date").alias("speed_event_date"),
        F.col("score").alias("speed_score"),
        F.col("decision").alias("speed_decision"),
        F.col("model_version").alias("speed_version"),
        F.col("scored_at").alias("speed_scored_at"),
    )
    # Only a speed row without a batch row asks whether silver holds its event, so silver is
    # joined to the speed side: both stay partitioned by event_id into the full outer join,
    # where a join after it would shuffle every joined row once more.
    # Shuffled like the speed side, never broadcast: a day's ids are millions of strings.
    known = silver_ids.select("event_id", F.lit(True).alias("in_silver")).hint("shuffle_merge")
    joined = b.join(s.join(known, "event_id", "left"), "event_id", "full_outer")
    diff = F.abs(F.col("batch_score") - F.col("speed_score"))
    outcome = (
        F.when(F.col("batch_score").isNull() & F.col("in_silver").isNull(), "rejected")
        .when(F.col("batch_score").isNull(), "speed_only")
        .when(F.col("speed_score").isNull(), "batch_only")
        .when(diff <= F.lit(tolerance), "agreed")
        .when(F.col("batch_version") == F.col("speed_version"), "disagreed_same_version")
        .otherwise("disagreed_other_version")
    )
    return joined.withColumns(
        {
            "event_date": F.coalesce("event_date", "speed_event_date"),
            "abs_diff": diff,
            "decision_flip": F.coalesce(F.col("batch_decision") != F.col("speed_decision"), F.lit(False)),
            "outcome": outcome,
        }
    ).drop("speed_event_date")


OUTCOMES = (
    "agreed",
    "disagreed_same_version",
    "disagreed_other_version",
    "batch_only",
    "speed_only",
    "rejected",
)


AUDITED_COLUMNS = ("batch_score", "speed_score", "outcome", "abs_diff", "decision_flip")


def audit_metrics() -> list[Column]:
    """The aggregates of one audit row over :func:`compare`'s output, or any rows with its
    :data:`AUDITED_COLUMNS` (for ``agg`` or ``observe``)."""
    return [
        F.count(F.col("batch_score")).alias("batch_rows"),
        F.count(F.col("speed_score")).alias("speed_rows"),
        *[F.sum(F.when(F.col("outcome") == name, 1).otherwise(0)).alias(name) for name in OUTCOMES],
        F.mean("abs_diff").alias("mean_abs_diff"),
        F.max("abs_diff").alias("max_abs_diff"),
        F.sum(F.col("decision_flip").cast("long")).alias("decision_flips"),
    ]


def audit_figures(metrics: dict[str, object], batch_ran: bool | None = None) -> dict[str, object]:
    """The figures of one audit row from the values of :func:`audit_metrics`.

    ``batch_ran``: whether the night has scored this date; by default, whether it has batch rows.
    """
    figures = {
        key: (value or 0) for key, value in metrics.items() if key not in ("mean_abs_diff", "max_abs_diff")
    }
    figures["rejected_speed"] = figures.pop("rejected")
    # Once the night has run, an event only the stream scored landed after it: a late arrival.
    if batch_ran is None:
        batch_ran = figures["batch_rows"] > 0
    figures["late_arrivals"] = figures["speed_only"] if batch_ran else 0
    figures["mean_abs_diff"] = metrics["mean_abs_diff"]
    figures["max_abs_diff"] = metrics["max_abs_diff"]
    return figures


def audit_row(compared: DataFrame, batch_ran: bool | None = None) -> dict[str, object]:
    """Count the outcomes of :func:`compare` into the figures of one audit row (one Spark job)."""
    return audit_figures(compared.agg(*audit_metrics()).first().asDict(), batch_ran)


@dataclass(frozen=True)
class AuditRow:
    """One reconciliation of one date, as written to gold.reconciliation_audit."""

    figures: dict[str, object]

    def __getattr__(self, name: str) -> object:
        try:
            return self.figures[name]
        except KeyError:
            raise AttributeError(name) from None


class Reconciler:
    """Reads gold.predictions_batch and gold.predictions_speed, writes serving and the audit."""

    def __init__(self, settings: Settings, spark: SparkSession):
        self.settings = settings
        self.spark = spark
        lake = Lakehouse(settings, spark)
        self.batch: Table = lake.create(
            "gold", "predictions_batch", PREDICTIONS_BATCH_SCHEMA, partition_by=["event_date"]
        )
        self.speed: Table = lake.create(
            "gold", "predictions_speed", PREDICTIONS_SPEED_SCHEMA, partition_by=["event_date"]
        )
        self.serving: Table = lake.create("gold", "predictions", SERVING_SCHEMA, partition_by=["event_date"])
        self.audit: Table = lake.create("gold", "reconciliation_audit", RECONCILIATION_AUDIT_SCHEMA)
        self.silver: Table = lake.create(
            "silver", "events", SILVER_EVENTS_SCHEMA, partition_by=["event_date"]
        )

    def run(self, day: date) -> AuditRow:
        """Reconcile one ``event_date``; re-running with unchanged inputs changes nothing."""
        batch_version, speed_version = self.batch.version(), self.speed.version()
        on_day = F.col("event_date") == F.lit(day)
        batch = self.batch.read(version=batch_version).where(on_day)
        # Canary rows were served like champion rows, so they are reconciled like them.
        # Only the compared columns travel through the dedupe's shuffle and sort.
        speed = latest_speed_rows(
            self.speed.read(version=speed_version).where(on_day).select(*SPEED_COMPARED)
        )
        silver_ids = self.silver.read().where(on_day).select("event_id")
        compared = compare(batch, speed, silver_ids, self.settings.reconcile.tolerance)
        audited = Observation()
        with session_conf(self.spark, NO_PARTIAL_DEDUPE):
            self._update_serving(day, compared, audited)
            observed_audit = observed(audited)
            figures = audit_figures(observed_audit) if observed_audit is not None else audit_row(compared)
        figures.update(event_date=day, batch_version=batch_version, speed_version=speed_version)
        self._write_audit(figures)
        return AuditRow(figures)

    def run_since(self, first: date, last: date) -> list[AuditRow]:
        days = (last - first).days
        return [self.run(first + timedelta(days=offset)) for offset in range(days + 1)]

    def _update_serving(self, day: date, compared: DataFrame, audited: Observation) -> None:
        """One merge: batch rows replace, speed-only rows fill gaps, rejected speed rows go.

        ``audited`` gets the audit's figures, counted as the merge reads its source.
        """
        now = F.current_timestamp()
        has_batch = F.col("batch_score").isNotNull()

        def pick(batch_column: str, speed_column: str):
            return F.when(has_batch, F.col(batch_column)).otherwise(F.col(speed_column))

        # Every compared event is in it: one without a batch row is speed_only or rejected.
        served = compared.select(
            "event_id",
            "event_date",
            pick("batch_score", "speed_score").alias("score"),
            pick("batch_decision", "speed_decision").alias("decision"),
            pick("batch_version", "speed_version").alias("model_version"),
            F.when(has_batch, "batch")
            .when(F.col("outcome") == "rejected", "rejected")
            .otherwise("speed")
            .alias("source"),
            (has_batch & F.col("speed_score").isNull()).alias("missing_in_speed"),
            pick("batch_scored_at", "speed_scored_at").alias("scored_at"),
            now.alias("updated_at"),
            *AUDITED_COLUMNS,
        )
        # The audit is counted over these narrow rows, not over the wider compared ones, and
        # not by a pass of its own.
        rows = served.observe(audited, *audit_metrics()).select(*SERVING_SCHEMA.fieldNames())
        # Batch rows replace whatever is there, skipping rows already equal so a re-run
        # commits no changes; speed rows only fill gaps; a speed row whose event silver
        # rejected (marked source = 'rejected' here, never inserted) leaves serving.
        # Confined to the day: only its files are read and rewritten, and the stream's
        # commits to other days meanwhile do not make the merge start over.
        self.serving.merge(
            rows,
            on=["event_date", "event_id"],
            partition={"event_date": day},
            delete_condition="source.source = 'rejected' AND target.source = 'speed'",
            update_condition=(
                "source.source = 'batch' AND (target.source <> 'batch' OR target.score <> source.score "
                "OR target.model_version <> source.model_version OR target.missing_in_speed <> source.missing_in_speed)"
            ),
            insert_condition="source.source <> 'rejected'",
        )

    def _write_audit(self, figures: dict[str, object]) -> None:
        # One row, built on the driver: no Spark job to make it.
        audit = driver_rows(RECONCILIATION_AUDIT_SCHEMA, [{**figures, "reconciled_at": datetime.now(UTC)}])
        # Keyed on the input versions: the same inputs reconciled twice give one audit row.
        self.audit.merge(audit, on=["event_date", "batch_version", "speed_version"], update=False)

    def compact_speed(self, today: date) -> int:
        """Delete reconciled speed rows older than the retention, then optimize and vacuum."""
        cutoff = today - timedelta(days=self.settings.reconcile.speed_retention_days)
        reconciled_days = [
            row.event_date
            for row in self.audit.read()
            .where(F.col("event_date") < F.lit(cutoff))
            .select("event_date")
            .distinct()
            .collect()
        ]
        if not reconciled_days:
            return 0
        days = ", ".join(f"DATE'{day.isoformat()}'" for day in reconciled_days)
        deleted = self.speed.delete(f"event_date IN ({days})")
        self.speed.optimize()
        self.speed.vacuum(retention_hours=24 * max(self.settings.reconcile.speed_retention_days, 1))
        return deleted
