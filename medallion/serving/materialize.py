"""The nightly refresh of the online store (``medallion serve materialize``).

Usage::

    from medallion.serving.materialize import Materializer

    report = Materializer(settings, spark).run()
    report.generation, report.profiles, report.from_serving, report.from_requests

One new store generation, published in one step (:meth:`OnlineStore.publish`):

- card profiles of today and the ``serving.late_days`` before (gold.card_profiles, which the
  night builds for the next day too);
- precomputed scores of the serving table's last ``serving.days`` days: each event's
  features rebuilt with :func:`medallion.features.build_features` (the batch's and the
  stream's function) from silver and the profiles, keyed with the version that scored it;
- the model inputs that missed online (gold.online_requests), scored by today's champion
  through the same scoring step as the night (:func:`medallion.predict.with_scores`);
- the serving rows themselves, for ``GET /predictions/{event_id}``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from medallion.clock import Clock
from medallion.config import Settings
from medallion.errors import ModelNotReadyError
from medallion.features import PROFILE_COLUMNS, build_features
from medallion.predict import with_scores
from medallion.schemas import FEATURE_COLUMNS, SERVING_SCHEMA
from medallion.serving.store import OnlineStore, Precomputed, Snapshot, jsonable_row, prediction_key
from medallion.serving.stores import open_store
from medallion.tables import Lakehouse


@dataclass
class MaterializeReport:
    generation: int
    store: str
    profile_days: list[str]
    profiles: int = 0
    from_serving: int = 0
    from_requests: int = 0
    serving_rows: int = 0
    model_version: str | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("store", self.store),
            ("generation", str(self.generation)),
            ("profile days", ", ".join(self.profile_days)),
            ("card profiles", str(self.profiles)),
            ("precomputed from serving", str(self.from_serving)),
            ("precomputed online misses", str(self.from_requests)),
            ("serving rows", str(self.serving_rows)),
            ("champion", "-" if self.model_version is None else f"v{self.model_version}"),
            ("seconds", f"{self.seconds:.1f}"),
            *[("note", note) for note in self.notes],
        ]


class Materializer:
    """Builds a :class:`~medallion.serving.store.Snapshot` from the lakehouse and publishes it."""

    def __init__(
        self,
        settings: Settings,
        spark: SparkSession,
        store: OnlineStore | None = None,
        log=print,
        lake: Lakehouse | None = None,
    ):
        self.settings = settings
        self.spark = spark
        self.store = store or open_store(settings)
        self.log = log
        self.lake = lake or Lakehouse(settings, spark)
        self.decimals = settings.serving.round_decimals

    def run(self) -> MaterializeReport:
        started = time.monotonic()
        today = Clock.from_settings(self.settings).today()
        serving = self.settings.serving
        profile_days = [today - timedelta(days=k) for k in range(serving.late_days, -1, -1)]
        since = today - timedelta(days=serving.serving_days)
        notes: list[str] = []

        profiles = self._profiles(profile_days)
        if not profiles:
            notes.append(
                f"gold.card_profiles has no profiles for {profile_days[-1]}: every card scores as unknown"
            )
        serving_rows, from_serving = self._serving(since)
        from_requests, version = self._missed_requests(since, notes)
        # An input the serving table already answers keeps that answer: a request that missed
        # under another version (or before the night) must not relabel a served prediction.
        served_keys = {key for key, _ in from_serving}
        from_requests = [(key, value) for key, value in from_requests if key not in served_keys]
        predictions = [*from_serving, *from_requests]
        info = {
            "profile_days": [d.isoformat() for d in profile_days],
            "since": since.isoformat(),
            "model_version": version,
            "published_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        generation = self.store.publish(
            Snapshot(profiles=profiles, predictions=predictions, serving=serving_rows, info=info)
        )
        return MaterializeReport(
            generation.id,
            self.store.describe(),
            info["profile_days"],
            len(profiles),
            len(from_serving),
            len(from_requests),
            len(serving_rows),
            version,
            time.monotonic() - started,
            notes,
        )

    def _read(self, layer: str, name: str):
        return self.lake.table(layer, name).read() if self.lake.exists(layer, name) else None

    def _profiles(self, days: list[date]) -> list[dict[str, Any]]:
        table = self._read("gold", "card_profiles")
        if table is None:
            return []
        rows = table.where(F.col("profile_date").isin(days)).select(
            "card_id", "profile_date", *PROFILE_COLUMNS
        )
        return rows.toArrow().to_pylist()

    def _serving(self, since: date) -> tuple[list[dict[str, Any]], list[tuple[str, Precomputed]]]:
        served = self._read("gold", "predictions")
        if served is None:
            return [], []
        served = served.where(F.col("event_date") >= F.lit(since))
        rows = [
            jsonable_row(row) for row in served.select(*SERVING_SCHEMA.fieldNames()).toArrow().to_pylist()
        ]
        events, profiles = self._read("silver", "events"), self._read("gold", "card_profiles")
        if events is None:
            return rows, []
        events = events.where(F.col("event_date") >= F.lit(since))
        if profiles is not None:
            profiles = profiles.where(F.col("profile_date") >= F.lit(since))
        features = build_features(events, profiles).select("event_id", "event_date", *FEATURE_COLUMNS)
        scored = features.join(
            served.select("event_id", "event_date", "score", "decision", "model_version", "source"),
            ["event_id", "event_date"],
        )
        keyed = []
        for row in scored.toArrow().to_pylist():
            key = prediction_key(row, row["model_version"], self.decimals)
            keyed.append((key, Precomputed(row["score"], row["decision"], row["model_version"], "serving")))
        return rows, keyed

    def _missed_requests(
        self, since: date, notes: list[str]
    ) -> tuple[list[tuple[str, Precomputed]], str | None]:
        from medallion.model.scoring import load_champion

        try:
            scorer = load_champion(self.spark, self.settings)
        except ModelNotReadyError as exc:
            notes.append(f"no online misses precomputed: {exc}")
            return [], None
        requests = self._read("gold", "online_requests")
        if requests is None:
            return [], str(scorer.version)
        missed = (
            requests.where((F.col("request_date") >= F.lit(since)) & ~F.col("precomputed"))
            .select(*FEATURE_COLUMNS)
            .dropDuplicates()
        )
        scored = with_scores(missed, scorer, self.settings.model.decision_threshold)
        keyed = []
        for row in scored.select(*FEATURE_COLUMNS, "score", "decision").toArrow().to_pylist():
            key = prediction_key(row, str(scorer.version), self.decimals)
            keyed.append((key, Precomputed(row["score"], row["decision"], str(scorer.version), "night")))
        return keyed, str(scorer.version)
