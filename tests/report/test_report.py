"""`medallion report`: one self-contained HTML page over a real run, and PSI on known distributions."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections import Counter
from datetime import timedelta
from html.parser import HTMLParser

import numpy as np
import pytest
from pyspark.sql import functions as F

from medallion.report import (
    PSI_MAJOR,
    PSI_MODERATE,
    SECTION_IDS,
    RunReport,
    bin_index,
    psi,
    psi_from_counts,
    quantile_edges,
)
from tests.conftest import HISTORY_END

DAY = HISTORY_END
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """Sections by id: their text, images and tables (rows of cell texts, by table id)."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, dict] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self._section: str | None = None
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._section = attrs["id"]
            self.sections[self._section] = {"text": [], "images": [], "h2": False}
        elif tag == "h2" and self._section:
            self.sections[self._section]["h2"] = True
        elif tag == "img" and self._section:
            self.sections[self._section]["images"].append(attrs.get("src", ""))
        elif tag == "table":
            self._table = attrs.get("id")
            if self._table:
                self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None
        elif tag == "table":
            self._table = None
        elif tag == "tr" and self._row is not None:
            if self._row:
                self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "td" and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._section:
            self.sections[self._section]["text"].append(data)
        if self._cell is not None:
            self._cell.append(data)

    def text(self, section: str) -> str:
        return " ".join(" ".join(self.sections[section]["text"]).split())


def parse(path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def png_images(page: Page, section: str) -> list[bytes]:
    images = []
    for src in page.sections[section]["images"]:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix), src[:60]
        data = base64.b64decode(src[len(prefix) :], validate=True)
        assert data.startswith(PNG_MAGIC)
        images.append(data)
    return images


def test_report_over_a_run_renders_every_section_with_its_charts(spark, lake_with_champion, tmp_path):
    """Stream three landed days, run the last night, reconcile all three: every section has data and charts."""
    from medallion.batch import NightlyBatch
    from medallion.datagen import generate_history
    from medallion.reconcile import Reconciler
    from medallion.streaming.speed import SpeedLayer
    from medallion.tables import Lakehouse

    settings = lake_with_champion(
        "stream.trigger.kind=availableNow", "stream.max_files_per_trigger=3", "datagen.files_per_day=4"
    )
    generate_history(settings, days=3, events_per_day=300, end_date=DAY, progress=False)
    SpeedLayer(settings, spark, log=lambda _: None).run(timeout=180)
    NightlyBatch(settings, spark).run(DAY, ingest=False)  # scores and reconciles DAY
    Reconciler(settings, spark).run_since(DAY - timedelta(days=2), DAY - timedelta(days=1))  # speed only

    report = RunReport(settings, spark).build()
    path = report.write()
    assert path.parent == settings.storage.root_path / "reports"
    assert path.name.startswith("run-") and path.name.endswith("Z.html")
    page = parse(path)

    assert list(page.sections) == list(SECTION_IDS)
    # No service answered requests here: tests/serving/test_online.py fills the online section.
    for section in [s for s in SECTION_IDS if s != "online"]:
        assert page.sections[section]["h2"], section
        assert "no data yet" not in page.text(section), (section, page.text(section))
        assert report[section].has_data
        assert png_images(page, section), f"{section} has no chart"
    assert len(png_images(page, "model")) >= 2  # ROC and PR

    from medallion.report.layers import reason_kind

    lake = Lakehouse(settings, spark)
    quarantine = lake.table("silver", "quarantine").read()
    expected = Counter(
        {
            (row.feed, row.reason): row["count"]
            for row in quarantine.select("feed", F.explode("reasons").alias("reason"))
            .select("feed", reason_kind(F.col("reason")).alias("reason"))
            .groupBy("feed", "reason")
            .count()
            .collect()
        }
    )
    assert expected, "datagen should have landed malformed records"
    listed = Counter(
        {(feed, reason): int(records) for feed, reason, records in page.tables["quarantine-reasons"]}
    )
    assert listed == expected

    layers = page.text("layers")
    for table in ("bronze.events", "silver.events", "silver.quarantine", "gold.stream_metrics"):
        assert table in layers
    audited = {row[0]: row for row in page.tables["agreement-table"]}
    assert set(audited) == {str(DAY - timedelta(days=offset)) for offset in range(3)}
    for audit in lake.table("gold", "reconciliation_audit").read().collect():  # one run per date here
        row = audited[str(audit.event_date)]
        assert [int(row[1]), int(row[4]), int(row[5])] == [audit.agreed, audit.speed_only, audit.batch_only]
    ((query, batches, rows, *_),) = page.tables["stream-summary"]
    metrics = lake.table("gold", "stream_metrics").read()
    assert (query, int(batches), int(rows)) == (
        settings.stream.query_name,
        metrics.count(),
        metrics.agg(F.sum("input_rows")).first()[0],
    )
    champion = page.text("model")
    assert "fraud_model v1" in champion and "roc_auc" in champion
    psi_by_day = {row[0]: row for row in page.tables["psi-table"]}  # date, events, PSI score, PSI features...
    for offset in range(3):
        day = psi_by_day[str(DAY - timedelta(days=offset))]
        assert int(day[1]) > 250 and float(day[2]) >= 0.0
    assert "training set" in page.text("drift")

    chromium = next(
        (
            shutil.which(name)
            for name in ("chromium", "chromium-browser", "google-chrome")
            if shutil.which(name)
        ),
        None,
    )
    if chromium:  # render it in a real browser where one is installed
        dom = subprocess.run(
            [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--dump-dom", path.as_uri()],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert all(f'id="{section}"' in dom for section in SECTION_IDS)


def test_report_on_an_empty_lakehouse_says_what_to_run(spark, settings):
    report = RunReport(settings, spark).build()
    page = parse(report.write())

    assert list(page.sections) == list(SECTION_IDS)
    for section in SECTION_IDS:
        assert page.sections[section]["h2"], section
        assert "no data yet: " in page.text(section), page.text(section)
        assert "run medallion " in page.text(section)
        assert not page.sections[section]["images"]
        assert not report[section].has_data
    assert not (settings.storage.root_path / "mlflow.db").exists()  # looking created no registry


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(7)
    reference = rng.normal(0.0, 1.0, 20_000)
    assert psi(reference, rng.normal(0.0, 1.0, 20_000)) < 0.01
    assert psi(reference, rng.normal(0.5, 1.0, 20_000)) > 0.2
    assert psi(reference, rng.normal(1.0, 1.0, 20_000)) > psi(reference, rng.normal(0.5, 1.0, 20_000))
    assert psi(reference, reference) == pytest.approx(0.0, abs=1e-12)


def test_psi_handles_scores_ties_empty_bins_and_categories():
    rng = np.random.default_rng(3)
    scores = rng.beta(0.5, 8.0, 10_000)
    assert psi(scores, rng.beta(0.5, 8.0, 10_000)) < 0.01
    assert psi(scores, rng.beta(2.0, 2.0, 10_000)) > 0.25
    # A constant sample: one bin, nothing to shift; actual outside the reference: finite and large.
    assert psi(np.zeros(100), np.zeros(50)) == pytest.approx(0.0)
    assert 1.0 < psi(np.arange(1000.0), np.full(1000, 5000.0)) < 100
    assert np.isnan(psi(np.arange(10.0), np.array([])))
    channels = np.array(["pos"] * 700 + ["ecom"] * 250 + ["atm"] * 50)
    assert psi(channels, rng.permutation(channels)) == pytest.approx(0.0)
    assert psi(channels, np.array(["ecom"] * 700 + ["pos"] * 250 + ["crypto"] * 50)) > 0.25


def test_psi_from_counts_over_quantile_bins_is_psi():
    """The pieces the drift section uses on Spark counts add up to :func:`psi` on the samples."""
    rng = np.random.default_rng(11)
    reference, actual = rng.normal(0.0, 1.0, 5_000), rng.normal(0.3, 1.2, 5_000)
    edges = quantile_edges(reference, 10)
    width = edges.size + 1
    assert width == 10 and list(bin_index([edges[0], edges[0] + 1e-9], edges)) == [0, 1]
    value = psi_from_counts(
        np.bincount(bin_index(reference, edges), minlength=width),
        np.bincount(bin_index(actual, edges), minlength=width),
    )
    assert value == pytest.approx(psi(reference, actual))
    assert PSI_MODERATE < value < PSI_MAJOR  # a moderate shift


def test_quarantine_reasons_are_grouped_by_kind_and_bounded(spark):
    """Reasons quote raw values: the report groups them by kind, in a bounded table and chart."""
    from medallion.report.layers import MAX_REASON_KINDS, reason_kind

    reasons = [f"unknown currency: X{n:03d}" for n in range(200)] + [
        "missing required field: card_id",
        "missing required field: amount",
        "wrong type: amount is not a number: 12,5",
        "unparseable timestamp: event_ts=yesterday",
        "oversized line: 5000 bytes > 4096",
    ]
    kinds = {
        row.kind
        for row in spark.createDataFrame([(r,) for r in reasons], "reason string")
        .select(reason_kind(F.col("reason")).alias("kind"))
        .collect()
    }
    assert kinds == {
        "unknown currency",
        "missing required field: card_id",
        "missing required field: amount",
        "wrong type",
        "unparseable timestamp",
        "oversized line",
    }
    assert len(kinds) <= MAX_REASON_KINDS
