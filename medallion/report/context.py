"""What every report section reads: the run's inputs and the report's bounds.

Usage::

    context = ReportContext(settings, spark, RunInputs(settings, spark, sample_rows=20_000))
    section = drift_section(context)

A section is a function of a :class:`ReportContext` returning a ``Section``
(:mod:`medallion.report.page`); :class:`medallion.report.run.RunReport` builds one context
and calls each section with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from pyspark.sql import SparkSession

from medallion.config import Settings
from medallion.report.inputs import Champion, RunInputs
from medallion.report.reference import Reference, load_reference


@dataclass
class ReportContext:
    """``top_features``: how many of the champion's most important features the drift section
    follows besides the score. ``max_days``: the newest days shown per day. ``min_day_rows``:
    days with fewer events (a few late arrivals) are listed but get no PSI."""

    settings: Settings
    spark: SparkSession
    inputs: RunInputs
    top_features: int = 3
    max_days: int = 14
    min_day_rows: int = 50

    @property
    def champion(self) -> Champion | None:
        return self.inputs.champion

    @cached_property
    def reference(self) -> Reference | None:
        """What drift is measured against; read once, on first use."""
        return load_reference(self.inputs)
