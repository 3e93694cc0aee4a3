"""The report over a run: :class:`RunReport` gathers the five sections into one :class:`Report`.

The sections, in page order, each an ``<section id="...">`` with an ``<h2>``:

- ``layers``: every Delta table (version, rows, last write) and silver.quarantine by reason;
- ``model``: the champion's version, run metrics and parameters, ROC and PR curves;
- ``agreement``: gold.reconciliation_audit per date (agreed, disagreed, speed only, batch only);
- ``stream``: gold.stream_metrics per micro-batch (latency p50/p95, rows/s) over time;
- ``drift``: score histograms per day and the PSI per day, against the champion's training
  window, of the score and of the champion's most important features.

A missing table, model or empty input gives its section a "no data yet" line naming the
command that fills it; the report never fails for lack of data. Spark aggregates first:
only per-day/per-bin counts, the small metrics tables and a bounded sample of the training
window reach pandas.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property

import pandas as pd
from pyspark.sql import SparkSession

from medallion.config import Settings
from medallion.report.agreement import agreement_section
from medallion.report.drift import drift_section
from medallion.report.inputs import Champion, RunInputs
from medallion.report.layers import layers_section, quarantine_reasons
from medallion.report.model import model_section
from medallion.report.page import Report, Section
from medallion.report.reference import Reference, load_reference
from medallion.report.stream import stream_section

SECTION_IDS = ("layers", "model", "agreement", "stream", "drift")


class RunReport:
    """Gathers the report's figures from the lakehouse and the MLflow registry.

    Example::

        report = RunReport(settings, spark, top_features=3, max_days=14).build()
        report.write()

    ``top_features``: how many of the champion's most important features the drift section
    follows besides the score. ``max_days``: the newest days shown per day. ``sample_rows``:
    the most rows of the training window brought to the driver. ``min_day_rows``: days with
    fewer events (a few late arrivals) are listed but get no PSI.
    """

    def __init__(
        self,
        settings: Settings,
        spark: SparkSession,
        top_features: int = 3,
        max_days: int = 14,
        sample_rows: int = 20_000,
        min_day_rows: int = 50,
    ) -> None:
        self.settings = settings
        self.spark = spark
        self.top_features = top_features
        self.max_days = max_days
        self.min_day_rows = min_day_rows
        self.inputs = RunInputs(settings, spark, sample_rows)

    def build(self) -> Report:
        sections = (self.layers(), self.model(), self.agreement(), self.stream(), self.drift())
        return Report(datetime.now(UTC), self.settings.storage.root_path, self.inputs.lake.engine, sections)

    @property
    def champion(self) -> Champion | None:
        return self.inputs.champion

    @cached_property
    def reference(self) -> Reference | None:
        """What drift is measured against; read once, on first use."""
        return load_reference(self.inputs)

    def layers(self) -> Section:
        return layers_section(self)

    def quarantine_reasons(self) -> pd.DataFrame:
        return quarantine_reasons(self.inputs)

    def model(self) -> Section:
        return model_section(self)

    def agreement(self) -> Section:
        return agreement_section(self)

    def stream(self) -> Section:
        return stream_section(self)

    def drift(self) -> Section:
        return drift_section(self)
