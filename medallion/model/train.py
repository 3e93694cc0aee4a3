"""Train the fraud model from gold.training_set and register it as the challenger.

Usage::

    from medallion.model.train import train

    result = train(settings, training_set_df, table_path=..., table_version=7)
    result.version, result.metrics["roc_auc"]

The split is by time: the newest ``model.train.validation_days`` days validate, the older
ones train, as the model will meet the future and never the past.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medallion.config import Settings
from medallion.errors import MedallionError
from medallion.model.pyfunc import FraudModel  # registered models may name it as this module's
from medallion.schemas import CATEGORICAL_FEATURES, FEATURE_COLUMNS, LABEL_COLUMN, NUMERIC_FEATURES


@dataclass(frozen=True)
class TrainResult:
    name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    validation: pd.DataFrame  # held-out rows, for the gate


def make_pipeline(settings: Settings):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    encode = ColumnTransformer(
        [
            (
                "categories",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                list(CATEGORICAL_FEATURES),
            ),
            ("numbers", "passthrough", list(NUMERIC_FEATURES)),
        ]
    )
    categorical = list(range(len(CATEGORICAL_FEATURES)))
    model = HistGradientBoostingClassifier(
        max_iter=settings.model.train.max_iter,
        learning_rate=settings.model.train.learning_rate,
        categorical_features=categorical,
        random_state=settings.model.train.seed,
    )
    return Pipeline([("encode", encode), ("model", model)])


def split_by_time(frame: pd.DataFrame, validation_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    days = sorted(frame["event_date"].unique())
    if len(days) <= validation_days:
        raise MedallionError(
            f"training set has {len(days)} day(s), need more than model.train.validation_days={validation_days}: "
            "generate or ingest more history, or lower model.train.validation_days"
        )
    cutoff = days[-validation_days]
    return frame[frame["event_date"] < cutoff], frame[frame["event_date"] >= cutoff]


def evaluate(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    decisions = scores >= threshold
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "precision": float(precision_score(labels, decisions, zero_division=0)),
        "recall": float(recall_score(labels, decisions, zero_division=0)),
        "brier": float(brier_score_loss(labels, scores)),
    }


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except OSError:
        return ""


def _plots(scores: np.ndarray, labels: np.ndarray, pipeline, validation: pd.DataFrame) -> dict[str, object]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import precision_recall_curve, roc_curve

    figures = {}
    fpr, tpr, _ = roc_curve(labels, scores)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(fpr, tpr)
    ax.plot([0, 1], [0, 1], linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    figures["roc_curve.png"] = fig
    precision, recall, _ = precision_recall_curve(labels, scores)
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(recall, precision)
    ax.set(xlabel="recall", ylabel="precision", title="precision / recall")
    figures["pr_curve.png"] = fig
    sample = validation.sample(min(len(validation), 2000), random_state=0)
    importance = permutation_importance(
        pipeline,
        sample[list(FEATURE_COLUMNS)],
        sample[LABEL_COLUMN],
        scoring="roc_auc",
        n_repeats=3,
        random_state=0,
    )
    fig, ax = plt.subplots(figsize=(5, 4))
    order = np.argsort(importance.importances_mean)
    ax.barh(np.array(FEATURE_COLUMNS)[order], importance.importances_mean[order])
    ax.set(title="permutation importance (ROC AUC drop)")
    fig.tight_layout()
    figures["feature_importance.png"] = fig
    return figures


def train(
    settings: Settings,
    training_set,
    table_path: str = "",
    table_version: int | None = None,
    shuffle_labels: bool = False,
) -> TrainResult:
    """Train on ``training_set`` (Spark or pandas), log to MLflow, register, alias ``challenger``.

    The training set goes to the driver as pandas: fine for the millions of rows a
    gradient-boosted tree trains on in one process; sample upstream beyond that.
    """
    import mlflow

    frame = training_set if isinstance(training_set, pd.DataFrame) else training_set.toPandas()
    if frame.empty:
        raise MedallionError("gold.training_set is empty: run medallion ingest and medallion features first")
    frame = frame.sort_values(["event_date", "event_id"]).reset_index(drop=True)
    if shuffle_labels:  # a deliberately useless model, for testing the gate
        frame[LABEL_COLUMN] = frame[LABEL_COLUMN].sample(frac=1.0, random_state=0).to_numpy()
    fit_rows, validation = split_by_time(frame, settings.model.train.validation_days)
    pipeline = make_pipeline(settings).fit(fit_rows[list(FEATURE_COLUMNS)], fit_rows[LABEL_COLUMN])
    scores = pipeline.predict_proba(validation[list(FEATURE_COLUMNS)])[:, 1]
    metrics = evaluate(scores, validation[LABEL_COLUMN].to_numpy(), settings.model.decision_threshold)

    run_id, info = _log_run(
        settings, frame, fit_rows, validation, pipeline, scores, metrics, table_path, table_version
    )
    name = settings.model.name
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    client.update_model_version(
        name,
        version,
        description=(
            f"Fraud probability from {len(FEATURE_COLUMNS)} gold features ({', '.join(FEATURE_COLUMNS)}); "
            f"trained on {frame['event_date'].min()}..{frame['event_date'].max()}, ROC AUC {metrics['roc_auc']:.3f}"
        ),
    )
    client.set_registered_model_alias(name, settings.model.aliases.challenger, version)
    _record_native_parity(settings, training_set, version, run_id, info.model_uri, validation)
    return TrainResult(name, version, run_id, metrics, validation)


def _log_run(
    settings: Settings,
    frame: pd.DataFrame,
    fit_rows: pd.DataFrame,
    validation: pd.DataFrame,
    pipeline,
    scores: np.ndarray,
    metrics: dict[str, float],
    table_path: str,
    table_version: int | None,
):
    """One MLflow run: parameters, metrics, lineage tags, plots, and the pyfunc registered
    under ``model.name``. Returns (run id, the logged model's info)."""
    import matplotlib.pyplot as plt
    import mlflow
    from mlflow.models import infer_signature

    from medallion.model.tracking import configure

    experiment_id = configure(settings)
    example = fit_rows[list(FEATURE_COLUMNS)].head(5)
    with mlflow.start_run(experiment_id=experiment_id, run_name="train") as run:
        mlflow.log_params(
            {
                "max_iter": settings.model.train.max_iter,
                "learning_rate": settings.model.train.learning_rate,
                "validation_days": settings.model.train.validation_days,
                "train_rows": len(fit_rows),
                "validation_rows": len(validation),
                "features": ",".join(FEATURE_COLUMNS),
            }
        )
        mlflow.log_metrics(metrics)
        mlflow.set_tags(
            {
                "training_table": table_path,
                "training_table_version": "" if table_version is None else str(table_version),
                "data_from": str(frame["event_date"].min()),
                "data_to": str(frame["event_date"].max()),
                "git_commit": _git_commit(),
            }
        )
        labels = validation[LABEL_COLUMN].to_numpy()
        for file_name, figure in _plots(scores, labels, pipeline, validation).items():
            mlflow.log_figure(figure, file_name)
            plt.close(
                figure
            )  # pyplot keeps every figure open until closed; a long-lived driver trains nightly
        signature = infer_signature(example, FraudModel(pipeline).predict(None, example))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=FraudModel(pipeline),
            signature=signature,
            input_example=example,
            registered_model_name=settings.model.name,
        )
    return run.info.run_id, info


def _record_native_parity(
    settings: Settings, training_set, version: str, run_id: str, uri: str, validation
) -> None:
    """The version compiled to Spark expressions and checked against its own pyfunc on the
    held-out rows; the verdict is recorded on the version (:mod:`medallion.model.native`)."""
    import mlflow
    from pyspark.sql import SparkSession

    from medallion.model.native import record_parity

    spark = (
        training_set.sparkSession
        if hasattr(training_set, "sparkSession")
        else SparkSession.getActiveSession()
    )
    record_parity(spark, settings, version, run_id, mlflow.pyfunc.load_model(uri), validation)
