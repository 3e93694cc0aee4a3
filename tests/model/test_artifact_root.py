"""MLflow's artifacts live apart from the landing zone: producers who drop input files must not
be able to replace a model that every scorer loads."""

from __future__ import annotations

import pytest

from medallion.config import load_settings
from medallion.errors import ConfigError
from tests.conftest import REPO


def settings_for(*overrides: str):
    return load_settings(environ={}, directory=REPO / "conf", overrides=list(overrides))


def test_a_new_experiment_keeps_artifacts_in_the_configured_root_outside_landing(tmp_path):
    import mlflow

    from medallion.model.tracking import configure

    default = settings_for(f"storage.root={tmp_path / 'lake'}")
    assert default.storage.mlflow_artifact_location == (tmp_path / "lake" / "mlartifacts").as_uri()
    assert "/landing" not in default.storage.mlflow_artifact_location

    models = tmp_path / "models"
    settings = settings_for(f"storage.root={tmp_path / 'lake'}", f"storage.artifact_root={models}")
    experiment = mlflow.MlflowClient(settings.storage.mlflow_tracking_uri).get_experiment(configure(settings))
    assert experiment.artifact_location == models.as_uri()
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        mlflow.log_text("weights", "model.txt")
    assert list(models.rglob("model.txt"))


@pytest.mark.parametrize(
    ("root", "artifacts"),
    [("/data/lake", "/data/lake/landing/models"), ("s3://bucket/lake", "s3://bucket/lake/landing")],
)
def test_an_artifact_root_inside_the_landing_zone_is_refused_in_one_line(root, artifacts):
    with pytest.raises(ConfigError, match=r"storage.artifact_root .* is inside the landing zone"):
        settings_for(f"storage.root={root}", f"storage.artifact_root={artifacts}")
