"""The population drift is measured against: the champion's training window, sampled and scored.

Example::

    reference = load_reference(RunInputs(settings, spark))
    reference.description     # "the champion's training set <path> v3, 2026-11-01..2026-11-20"
    reference.scores          # the champion's scores of the sample, or None
    reference.importance      # feature -> ROC AUC drop when shuffled (labelled windows only)

Without a champion naming its training window, the earliest days of gold.features stand in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from medallion.errors import MedallionError
from medallion.report.inputs import SCORE, Champion, RunInputs
from medallion.schemas import FEATURE_COLUMNS, LABEL_COLUMN
from medallion.tables import Table


@dataclass
class Reference:
    """The training window (or earliest days) drift is measured against: a bounded sample."""

    frame: pd.DataFrame  # event_date, feature columns, and the label if known
    scores: np.ndarray | None
    description: str
    has_labels: bool
    importance: pd.Series | None = field(default=None)  # feature -> ROC AUC drop when shuffled


def load_reference(inputs: RunInputs) -> Reference | None:
    """The champion's training window, read where it was trained, else this lake's earliest days."""
    champion = inputs.champion
    if champion is not None:
        found = _training_window(inputs, champion)
        if found is not None:
            frame, description = found
            has_labels = LABEL_COLUMN in frame.columns
            features = frame[list(FEATURE_COLUMNS)]
            scores = inputs.model.predict(features).to_numpy(dtype="float64") if len(frame) else None
            reference = Reference(frame, scores, description, has_labels)
            if has_labels:
                reference.importance = _permutation_importance(
                    inputs.model, features, frame[LABEL_COLUMN].to_numpy()
                )
            return reference
    features = inputs.read("gold", "features")
    if features is None:
        return None
    days = sorted(row.event_date for row in features.select("event_date").distinct().collect())
    window = days[: max(1, min(3, len(days) - 1))]
    columns = ["event_id", "event_date", *FEATURE_COLUMNS]
    frame = inputs.sample(features.where(F.col("event_date").isin(window)), columns)
    scored = inputs.scores()
    scores = None
    if scored is not None:
        sample = inputs.sample(scored.where(F.col("event_date").isin(window)), [SCORE])
        scores = sample[SCORE].to_numpy(dtype="float64") if len(sample) else None
    description = (
        f"the earliest {len(window)} day(s) of gold.features ({window[0]}..{window[-1]}): "
        "no champion names a training window"
    )
    return Reference(frame.drop(columns=["event_id"]), scores, description, False)


def _training_window(inputs: RunInputs, champion: Champion) -> tuple[pd.DataFrame, str] | None:
    tags = champion.tags
    first, last = tags.get("data_from"), tags.get("data_to")
    window = f"{first}..{last}" if first and last else "its whole training set"
    columns = ["event_date", *FEATURE_COLUMNS]
    path, version = tags.get("training_table"), tags.get("training_table_version")
    engine = inputs.lake.engine
    if path and Table.exists(inputs.spark, path, engine=engine):
        table = Table.at(inputs.spark, path, engine=engine)
        try:
            frame, seen = table.read(version=int(version)), f"v{version}"
        except (MedallionError, ValueError, TypeError):
            frame, seen = table.read(), f"v{table.version()} (v{version} is gone)"
        labelled = LABEL_COLUMN in frame.columns
        sample = inputs.sample(frame, [*columns, LABEL_COLUMN] if labelled else columns)
        return sample, f"the champion's training set {path} {seen}, {window}"
    for name, labelled in (("training_set", True), ("features", False)):
        frame = inputs.read("gold", name)
        if frame is None:
            continue
        if first and last:
            frame = frame.where(
                F.col("event_date").between(F.lit(first).cast("date"), F.lit(last).cast("date"))
            )
        if frame.isEmpty():
            continue
        sample = inputs.sample(frame, [*columns, LABEL_COLUMN] if labelled else columns)
        return sample, f"gold.{name} over the champion's training window {window}"
    return None


def _permutation_importance(
    model, features: pd.DataFrame, labels: np.ndarray, repeats: int = 2
) -> pd.Series | None:
    """Mean ROC AUC drop when each feature is shuffled, largest first; None with one class only."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2:
        return None
    sample = features.sample(min(len(features), 5000), random_state=0)
    labels = pd.Series(labels, index=features.index).loc[sample.index].to_numpy()
    if len(np.unique(labels)) < 2:
        return None
    baseline = roc_auc_score(labels, model.predict(sample).to_numpy())
    rng = np.random.default_rng(0)
    drops = {}
    for name in FEATURE_COLUMNS:
        losses = []
        for _ in range(repeats):
            shuffled = sample.copy()
            shuffled[name] = rng.permutation(shuffled[name].to_numpy())
            losses.append(baseline - roc_auc_score(labels, model.predict(shuffled).to_numpy()))
        drops[name] = float(np.mean(losses))
    return pd.Series(drops).sort_values(ascending=False)
