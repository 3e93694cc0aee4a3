"""One self-contained HTML page about a run: layers, model, batch/speed agreement, stream, drift.

Usage::

    from medallion.report import RunReport, psi

    report = RunReport(settings, spark).build()
    path = report.write()                  # <storage.root>/reports/run-20261120T081500Z.html
    report.write("/tmp/reports")           # ...or into another directory
    report["drift"].has_data               # each section by id: layers, model, agreement, stream, drift
    print(report.html())                   # the page itself: inline CSS, charts as base64 PNG

    psi(training_scores, todays_scores)    # population stability index: 0.02 stable, 0.3 shifted

Modules: ``run`` (RunReport), ``inputs`` and ``reference`` (what it reads), one per section
(``layers``, ``model``, ``agreement``, ``stream``, ``drift``), ``page`` (the HTML) and ``psi``.
"""

from medallion.report.page import Report, Section
from medallion.report.psi import (
    PSI_EPSILON,
    PSI_MAJOR,
    PSI_MODERATE,
    bin_index,
    psi,
    psi_from_counts,
    quantile_edges,
)
from medallion.report.run import SECTION_IDS, RunReport

__all__ = [
    "PSI_EPSILON",
    "PSI_MAJOR",
    "PSI_MODERATE",
    "SECTION_IDS",
    "Report",
    "RunReport",
    "Section",
    "bin_index",
    "psi",
    "psi_from_counts",
    "quantile_edges",
]
