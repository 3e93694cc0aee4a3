"""The model as MLflow stores it: a pyfunc around the fitted scikit-learn pipeline.

Usage::

    mlflow.pyfunc.log_model(name="model", python_model=FraudModel(pipeline), ...)
    mlflow.pyfunc.load_model(uri).predict(features)     # the fraud probability of each row

Every scorer loads this one class: the nightly batch's and the stream's pandas UDF, the
online service, and the native compiler (:mod:`medallion.model.native`), which reads the
pipeline it holds.
"""

from __future__ import annotations

import pandas as pd

from medallion.schemas import FEATURE_COLUMNS

try:
    import mlflow.pyfunc

    _PythonModel = mlflow.pyfunc.PythonModel
except ImportError:  # pragma: no cover - mlflow is a hard dependency
    _PythonModel = object


class FraudModel(_PythonModel):
    """A pyfunc whose ``predict`` returns the fraud probability (float) of each row."""

    def __init__(self, pipeline=None):
        self.pipeline = pipeline

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.Series:
        frame = model_input[list(FEATURE_COLUMNS)]
        return pd.Series(self.pipeline.predict_proba(frame)[:, 1].astype("float64"), name="score")
