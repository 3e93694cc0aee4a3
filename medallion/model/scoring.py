"""Startup checks and the scoring UDF every scoring job uses.

Usage::

    scorer = load_champion(spark, settings)     # alias resolved, signature checked, smoke-tested
    features.withColumn("score", scorer.udf(*[F.col(c) for c in FEATURE_COLUMNS]))
    scorer.scored_by, scorer.path_note          # 'native' | 'pandas_udf', and why (model.scoring)

With ``model.scoring`` native or auto, ``scorer.native`` holds the compiled model
(:mod:`medallion.model.native`) when its scores equal the pyfunc's on its held-out rows;
otherwise the pandas UDF scores and ``path_note`` is the one line saying why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from medallion.config import Settings
from medallion.errors import ModelNotReadyError
from medallion.model.registry import version_for
from medallion.schemas import CATEGORICAL_FEATURES, FEATURE_COLUMNS, NUMERIC_FEATURES


@dataclass(frozen=True)
class Scorer:
    """A registered model version ready to score: ``udf`` is an ``mlflow.pyfunc.spark_udf``,
    ``native`` the compiled model when ``model.scoring`` chose it and its parity held."""

    name: str
    version: str
    run_id: str
    udf: Any
    native: Any = None
    path_note: str = ""

    @property
    def scored_by(self) -> str:
        return "native" if self.native is not None else "pandas_udf"


def resolve_alias(settings: Settings, alias: str) -> str:
    return version_for(settings, alias)


def check_model(settings: Settings, version: str):
    """Load the version, compare its signature with the gold features, run one prediction."""
    import mlflow

    from medallion.model.registry import require_gate

    require_gate(settings, version)  # gate passed or force-promoted, before anything is loaded
    uri = f"models:/{settings.model.name}/{version}"
    model = mlflow.pyfunc.load_model(uri)
    inputs = model.metadata.get_input_schema()
    names = inputs.input_names() if inputs is not None else []
    if list(names) != list(FEATURE_COLUMNS):
        missing = sorted(set(FEATURE_COLUMNS) - set(names))
        extra = sorted(set(names) - set(FEATURE_COLUMNS))
        raise ModelNotReadyError(
            f"{settings.model.name} v{version} does not take the gold features (missing {missing or 'none'}, "
            f"unexpected {extra or 'none'}): retrain with medallion train"
        )
    smoke = pd.DataFrame(
        [{**dict.fromkeys(NUMERIC_FEATURES, 0.0), **dict.fromkeys(CATEGORICAL_FEATURES, "pos")}]
    )
    score = float(model.predict(smoke).iloc[0])
    if not 0.0 <= score <= 1.0:
        raise ModelNotReadyError(
            f"{settings.model.name} v{version} smoke prediction {score} is not a probability"
        )
    return model


def load_alias(spark, settings: Settings, alias: str) -> Scorer:
    import mlflow

    version = version_for(settings, alias)
    model = check_model(settings, version)
    udf = mlflow.pyfunc.spark_udf(
        spark, f"models:/{settings.model.name}/{version}", result_type="double", env_manager="local"
    )
    native, note = None, ""
    if settings.model.scoring != "pandas_udf":
        from medallion.model.native import load_native

        native, note = load_native(spark, settings, version, model)
        if native is None:
            note = f"model.scoring={settings.model.scoring}: {note}; scoring with the pandas UDF"
            logging.getLogger("medallion.scoring").warning(note)
    return Scorer(settings.model.name, version, model.metadata.run_id, udf, native, note)


def load_champion(spark, settings: Settings) -> Scorer:
    """The champion, checked: missing alias or mismatched signature end in one line."""
    return load_alias(spark, settings, settings.model.aliases.champion)
