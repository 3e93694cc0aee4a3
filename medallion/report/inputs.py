"""What the report reads: the lakehouse's tables, one score per event, and the champion in MLflow.

Example::

    inputs = RunInputs(settings, spark)
    inputs.read("gold", "stream_metrics")    # a DataFrame, or None if the table is absent or empty
    inputs.scores()                          # event_id, event_date, score: batch, else serving
    inputs.champion                          # Champion, or None without a registry or champion
    inputs.artifact("roc_curve.png")         # bytes the champion's run logged, or None
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from medallion.config import Settings
from medallion.errors import ModelNotReadyError
from medallion.tables import Lakehouse

#: The score column of gold.predictions_batch and gold.predictions.
SCORE = "score"


@dataclass(frozen=True)
class Champion:
    """The champion version and what its MLflow run recorded."""

    name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]


class RunInputs:
    """Reads for the report; ``sample_rows`` bounds every sample brought to the driver."""

    def __init__(
        self,
        settings: Settings,
        spark: SparkSession,
        sample_rows: int = 20_000,
        lake: Lakehouse | None = None,
    ) -> None:
        self.settings = settings
        self.spark = spark
        self.sample_rows = sample_rows
        self.lake = lake or Lakehouse(settings, spark)

    def read(self, layer: str, name: str) -> DataFrame | None:
        """The table's rows, or None if the table is absent or empty."""
        if not self.lake.exists(layer, name):
            return None
        frame = self.lake.table(layer, name).read()
        return None if frame.isEmpty() else frame

    def scores(self) -> DataFrame | None:
        """One score per event: gold.predictions_batch, plus serving rows the batch has not covered."""
        batch = self.read("gold", "predictions_batch")
        serving = self.read("gold", "predictions")
        columns = ["event_id", "event_date", SCORE]
        if batch is None and serving is None:
            return None
        if batch is None:
            return serving.select(*columns)
        if serving is None:
            return batch.select(*columns)
        newer = serving.select(*columns).join(batch.select("event_id"), "event_id", "left_anti")
        return batch.select(*columns).unionByName(newer)

    def sample(self, frame: DataFrame, columns: Sequence[str]) -> pd.DataFrame:
        """At most ``sample_rows`` rows of ``frame`` (a seeded sample), as pandas."""
        rows = frame.count()
        if rows > self.sample_rows:
            frame = frame.sample(False, min(1.0, 1.2 * self.sample_rows / rows), seed=0).limit(
                self.sample_rows
            )
        return frame.select(*columns).toPandas()

    @cached_property
    def champion(self) -> Champion | None:
        """The champion and its run, or None when there is no registry or no champion yet."""
        uri = self.settings.storage.mlflow_tracking_uri
        if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
            return None  # do not create an empty registry just to find it empty
        import mlflow

        from medallion.model.registry import version_for
        from medallion.model.tracking import configure

        try:
            version = version_for(self.settings, self.settings.model.aliases.champion)
        except ModelNotReadyError:
            return None
        configure(self.settings)
        client = mlflow.MlflowClient()
        run_id = client.get_model_version(self.settings.model.name, version).run_id
        run = client.get_run(run_id)
        return Champion(
            self.settings.model.name,
            version,
            run_id,
            dict(run.data.metrics),
            dict(run.data.params),
            dict(run.data.tags),
        )

    @cached_property
    def model(self):
        """The champion as an in-process pyfunc (scores the reference sample)."""
        import mlflow

        champion = self.champion
        return mlflow.pyfunc.load_model(f"models:/{champion.name}/{champion.version}")

    def artifact(self, name: str) -> bytes | None:
        """A file the champion's run logged (e.g. ``roc_curve.png``), or None."""
        import tempfile

        import mlflow
        from mlflow.exceptions import MlflowException

        with tempfile.TemporaryDirectory() as folder:
            try:
                local = mlflow.artifacts.download_artifacts(
                    run_id=self.champion.run_id, artifact_path=name, dst_path=folder
                )
                return Path(local).read_bytes()
            except (MlflowException, OSError):
                return None
