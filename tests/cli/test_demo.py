"""`medallion demo`, small: every stage runs and the summary reports each part of the loop."""

from __future__ import annotations

import pytest

from medallion.demo import run_demo


@pytest.mark.heavy
@pytest.mark.usefixtures("delta_engine")
def test_demo_runs_the_whole_loop_and_summarises_it(spark, lake_with_champion):
    settings = lake_with_champion(
        "datagen.events_per_day=300",
        "datagen.files_per_day=3",
        "datagen.follow_rate=30",
        "stream.trigger.interval=1 second",
        "model.train.max_iter=40",
        "model.train.validation_days=1",
    )
    lines: list[str] = []

    summary = run_demo(settings, spark, days=2, stream_seconds=4, log=lines.append)

    assert [line[:10] for line in lines if line.startswith("[demo]")] == [
        "[demo] 1/5",
        "[demo] 2/5",
        "[demo] 3/5",
        "[demo] 4/5",
        "[demo] 5/5",
    ]
    sections = {section for section, _, _ in summary.rows}
    assert {"rows per layer", "quarantine reasons", "model", "batch vs speed", "stream", "report"} <= sections
    values = {(section, item): value for section, item, value in summary.rows}
    assert int(values[("batch vs speed", "agreed")]) > 0  # tonight's batch agrees with the live stream
    assert int(values[("stream", "landed rows")]) > 0
    assert all(":" not in item for section, item, _ in summary.rows if section == "quarantine reasons")
    assert summary.report_path is not None and summary.report_path.is_file()
