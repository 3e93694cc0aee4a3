"""Point MLflow at the tracking store and registry from settings (sqlite under the storage root)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from medallion.config import Settings

_configured: dict[str, str] = {}


def configure(settings: Settings) -> str:
    """Set tracking and registry URIs; return the experiment id (artifacts in storage.artifact_root)."""
    import mlflow

    uri = settings.storage.mlflow_tracking_uri
    # The stream asks at every batch boundary: skip the store round trips once set up.
    if uri in _configured and mlflow.get_tracking_uri() == uri:
        return _configured[uri]

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = settings.storage.experiment
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        _configured[uri] = experiment.experiment_id
    else:
        _configured[uri] = mlflow.create_experiment(
            name, artifact_location=settings.storage.mlflow_artifact_location
        )
    return _configured[uri]
