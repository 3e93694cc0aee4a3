"""Gold tables for a day: card profiles, features and the training set, written through the Delta layer.

Usage::

    from medallion.features import FeatureStore

    store = FeatureStore(settings, spark)
    store.build(date(2026, 11, 20))        # profiles for the day and the next, features of the day
    store.build(date(2026, 11, 1), date(2026, 11, 20))   # a backfill, in one pass
    store.refresh_training_set()           # features joined to the latest labels

The feature logic lives in :mod:`medallion.features.definition` and :mod:`medallion.features.gold`; this module
only decides which rows to compute and replaces exactly those, so re-running a day is
idempotent and leaves other days untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from medallion.catalog import CARD_PROFILES, FEATURES, SILVER_EVENTS, SILVER_LABELS, TRAINING_SET, TableSpec
from medallion.config import Settings
from medallion.features.definition import build_features
from medallion.features.gold import PROFILE_WINDOW_DAYS, card_profiles, training_set
from medallion.observation import observed
from medallion.silver import latest_labels
from medallion.spark import session_conf
from medallion.tables import Lakehouse, Table

# Spark's collect_set aggregate sorts its input once a task holds more than 128 groups: every
# build sorted the merchants of each card and day. Up to this many groups a task hashes;
# past it the sort still bounds the memory the sets take.
HASHED_SET_GROUPS = {"spark.sql.objectHashAggregate.sortBased.fallbackThreshold": "100000"}


@dataclass(frozen=True)
class DayBuild:
    """What :meth:`FeatureStore.build` wrote: ``day`` (through ``last_day`` for a range)."""

    day: date
    events: int
    profiles: int
    features: int
    features_version: int
    last_day: date | None = None

    @property
    def days(self) -> str:
        return str(self.day) if self.last_day in (None, self.day) else f"{self.day}..{self.last_day}"


class FeatureStore:
    """Owns gold.card_profiles, gold.features and gold.training_set."""

    def __init__(self, settings: Settings, spark: SparkSession, lake: Lakehouse | None = None):
        self.settings = settings
        self.spark = spark
        self.lake = lake or Lakehouse(settings, spark)
        self.silver_events: Table = self.lake.open(SILVER_EVENTS)
        self.silver_labels: Table = self.lake.open(SILVER_LABELS)

    def table(self, name: str) -> Table:
        return self.lake.table("gold", name)

    def _replace(self, spec: TableSpec, rows: DataFrame, where: str) -> Table:
        if not self.lake.exists(spec.layer, spec.name):
            return self._create_from(spec, rows)
        table = self.lake.table(spec.layer, spec.name)
        table.overwrite(rows, where=where)
        return table

    def _create_from(self, spec: TableSpec, rows: DataFrame) -> Table:
        table = self.lake.create(spec.layer, spec.name, rows.schema, partition_by=spec.partition_by)
        table.append(rows)
        return table

    def profiles_for(self, days: list[date]) -> DataFrame:
        """Card profiles as of each day, from silver events strictly before it."""
        first = min(days) - timedelta(days=PROFILE_WINDOW_DAYS)
        history = self.silver_events.read().where(
            (F.col("event_date") >= F.lit(first)) & (F.col("event_date") < F.lit(max(days)))
        )
        return card_profiles(history, days)

    def build(self, day: date, last_day: date | None = None) -> DayBuild:
        """Profiles for ``day`` and ``day + 1`` (what tomorrow's stream looks up), features of ``day``.

        With ``last_day``, the whole range in one pass (profiles through ``last_day + 1``):
        a backfill costs one set of jobs and commits, not one per day.
        """
        last_day = last_day or day
        if last_day < day:
            raise ValueError(f"last_day {last_day} is before day {day}")
        feature_days = [day + timedelta(days=k) for k in range((last_day - day).days + 1)]
        days = [*feature_days, last_day + timedelta(days=1)]
        profiles = self.profiles_for(days).persist()
        try:
            with session_conf(self.spark, HASHED_SET_GROUPS):
                profile_rows = profiles.count()  # builds the cache
            in_days = ", ".join(f"DATE'{d.isoformat()}'" for d in days)
            self._replace(CARD_PROFILES, profiles, f"profile_date IN ({in_days})")
            in_range = (F.col("event_date") >= F.lit(day)) & (F.col("event_date") <= F.lit(last_day))
            events = self.silver_events.read().where(in_range)
            # Counted while written: caching two million feature rows to count them costs
            # more than computing them.
            counted = Observation()
            features = build_features(
                events, profiles.where(F.col("profile_date") <= F.lit(last_day))
            ).observe(counted, F.count(F.lit(1)).alias("rows"))
            in_days = f"event_date BETWEEN DATE'{day.isoformat()}' AND DATE'{last_day.isoformat()}'"
            table = self._replace(FEATURES, features, in_days)
            seen = observed(counted)
            feature_rows = seen["rows"] if seen else table.read().where(in_days).count()
        finally:
            profiles.unpersist()
        return DayBuild(day, feature_rows, profile_rows, feature_rows, table.version(), last_day)

    def refresh_training_set(self) -> tuple[int, int]:
        """Rebuild gold.training_set from all features and the latest labels; returns (rows, version)."""
        labelled = training_set(
            self.table("features").read(), latest_labels(self.silver_labels.read())
        ).persist()
        try:
            rows = labelled.count()
            if self.lake.exists("gold", "training_set"):
                table = self.lake.table("gold", "training_set")
                table.overwrite(labelled)
            else:
                table = self._create_from(TRAINING_SET, labelled)
        finally:
            labelled.unpersist()
        return rows, table.version()

    def event_dates(self) -> list[date]:
        """Every event_date silver holds, oldest first."""
        rows = self.silver_events.read().select("event_date").distinct().orderBy("event_date").collect()
        return [row.event_date for row in rows]
