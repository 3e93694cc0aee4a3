"""The report over a run: :class:`RunReport` gathers the sections into one :class:`Report`.

The sections, in page order, each an ``<section id="...">`` with an ``<h2>``:

- ``layers``: every Delta table (version, rows, last write) and silver.quarantine by reason;
- ``model``: the champion's version, run metrics and parameters, ROC and PR curves;
- ``agreement``: gold.reconciliation_audit per date (agreed, disagreed, speed only, batch only);
- ``stream``: gold.stream_metrics per micro-batch (latency p50/p95, rows/s) over time;
- ``online``: gold.online_requests per day (hits, misses by scoring path, latency percentiles);
- ``drift``: score histograms per day and the PSI per day, against the champion's training
  window, of the score and of the champion's most important features.

A missing table, model or empty input gives its section a "no data yet" line naming the
command that fills it; the report never fails for lack of data. Spark aggregates first:
only per-day/per-bin counts, the small metrics tables and a bounded sample of the training
window reach pandas.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from pyspark.sql import SparkSession

from medallion.config import Settings
from medallion.report.agreement import agreement_section
from medallion.report.context import ReportContext
from medallion.report.drift import drift_section
from medallion.report.inputs import RunInputs
from medallion.report.layers import layers_section, quarantine_reasons
from medallion.report.model import model_section
from medallion.report.online import online_section
from medallion.report.page import Report
from medallion.report.stream import stream_section
from medallion.tables import Lakehouse

SECTION_IDS = ("layers", "model", "agreement", "stream", "online", "drift")
SECTIONS = (layers_section, model_section, agreement_section, stream_section, online_section, drift_section)


class RunReport:
    """Gathers the report's figures from the lakehouse and the MLflow registry.

    Example::

        report = RunReport(settings, spark, top_features=3, max_days=14).build()
        report.write()

    ``sample_rows``: the most rows of the training window brought to the driver; the others
    bound the sections (:class:`~medallion.report.context.ReportContext`).
    """

    def __init__(
        self,
        settings: Settings,
        spark: SparkSession,
        top_features: int = 3,
        max_days: int = 14,
        sample_rows: int = 20_000,
        min_day_rows: int = 50,
        lake: Lakehouse | None = None,
    ) -> None:
        self.settings = settings
        self.inputs = RunInputs(settings, spark, sample_rows, lake)
        self.context = ReportContext(settings, spark, self.inputs, top_features, max_days, min_day_rows)

    def build(self) -> Report:
        sections = tuple(section(self.context) for section in SECTIONS)
        return Report(datetime.now(UTC), self.settings.storage.root_path, self.inputs.lake.engine, sections)

    def quarantine_reasons(self) -> pd.DataFrame:
        return quarantine_reasons(self.inputs)
