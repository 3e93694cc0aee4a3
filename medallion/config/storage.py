"""``storage``: where the lakehouse lives (landing zone, tables, checkpoints, MLflow)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from medallion.config.base import URI, Section, path_segment
from medallion.errors import ConfigError


class StorageSettings(Section):
    """Where everything lives: one root for landing zone, tables, checkpoints and MLflow."""

    root: str = "./lakehouse"
    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; default sqlite:///<root>/mlflow.db"
    )
    artifact_root: str | None = Field(
        default=None,
        description="MLflow model artifacts; default <root>/mlartifacts (on Databricks: the workspace's). "
        "Never under the landing zone: a model is code that batch, stream and serving load, and "
        "producers write the landing zone",
    )
    experiment: str = Field(
        default="medallion",
        description="MLflow experiment name; with tracking_uri databricks a workspace path (/Shared/medallion)",
    )

    @model_validator(mode="after")
    def _experiment_where_the_tracking_server_wants_it(self) -> StorageSettings:
        if self.tracks_on_databricks and not self.experiment.startswith("/"):
            raise ConfigError(
                f"storage.experiment={self.experiment!r}: Databricks names experiments by workspace path; "
                "set storage.experiment=/Shared/medallion (or /Users/<you>/medallion)"
            )
        return self

    @model_validator(mode="after")
    def _artifacts_outside_landing(self) -> StorageSettings:
        if self.mlflow_artifact_location is None:
            return self
        landing, artifacts = self._under("landing").rstrip("/"), self.mlflow_artifact_location.rstrip("/")
        if not URI.match(landing):
            landing = Path(landing).as_uri()
        if artifacts == landing or artifacts.startswith(landing + "/"):
            raise ConfigError(
                f"storage.artifact_root {self.artifact_root!r} is inside the landing zone {landing}: "
                "whoever drops input files could replace a model; choose a path outside <root>/landing"
            )
        return self

    @property
    def is_uri(self) -> bool:
        """``s3://``, ``abfss://``, ``gs://``, ``dbfs:/`` ...: kept as given, never resolved
        against the working directory (``/Volumes/...`` is a local path)."""
        return bool(URI.match(self.root))

    @property
    def root_path(self) -> Path:
        """The root as a local path (the MLflow store, reports, the local broker's logs)."""
        return Path(self.root).expanduser().resolve()

    def _under(self, *parts: str) -> str:
        if self.is_uri:
            return "/".join([self.root.rstrip("/"), *parts])
        return str(self.root_path.joinpath(*parts))

    @property
    def landing_events(self) -> str:
        return self._under("landing", "events")

    @property
    def landing_labels(self) -> str:
        return self._under("landing", "labels")

    def table_path(self, layer: str, name: str) -> str:
        """``<root>/tables/<layer>/<name>``, e.g. ``table_path("silver", "events")``."""
        return self._under("tables", path_segment(layer, "layer"), path_segment(name, "table name"))

    def checkpoint_path(self, query_name: str) -> str:
        return self._under("checkpoints", path_segment(query_name, "query name"))

    def claims_path(self, feed: str) -> str:
        """``<root>/claims/<feed>``: which batch owns each landing file (:mod:`medallion.claims`)."""
        return self._under("claims", path_segment(feed, "feed"))

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{self.root_path / 'mlflow.db'}"

    @property
    def tracks_on_databricks(self) -> bool:
        return (self.tracking_uri or "").startswith("databricks")

    @property
    def mlflow_artifact_location(self) -> str | None:
        """Where a new MLflow experiment keeps its artifacts, as a URI (``file://`` when local).

        With Databricks tracking: None (the workspace's own artifact store) unless
        ``artifact_root`` is set; a Unity Catalog volume path becomes the ``dbfs:/Volumes/...``
        URI Databricks takes for an experiment, never a ``file://`` one."""
        if self.tracks_on_databricks:
            if self.artifact_root is None or URI.match(self.artifact_root):
                return self.artifact_root
            return (
                "dbfs:" + self.artifact_root
                if self.artifact_root.startswith("/Volumes/")
                else self.artifact_root
            )
        location = self.artifact_root or self._under("mlartifacts")
        if URI.match(location):
            return location
        return Path(location).expanduser().resolve().as_uri()
