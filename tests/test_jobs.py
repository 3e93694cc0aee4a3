"""The jobs/ entry points under a real `spark-submit`, as a scheduler would run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pyspark.sql import functions as F

from medallion.datagen import generate_history
from medallion.tables import Lakehouse
from tests.conftest import HISTORY_END, REPO

DAY = HISTORY_END


def spark_submit(
    job: str | Path,
    *args: str,
    options: tuple[str, ...] = ("--master", "local[2]", "--driver-memory", "1g"),
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run ``job`` (a file under jobs/, or any script) under the real spark-submit."""
    spark_submit = Path(sys.executable).parent / "spark-submit"
    script = job if isinstance(job, Path) else REPO / "jobs" / job
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    return subprocess.run(
        [str(spark_submit), *options, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )


def test_spark_submit_nightly_batch_scores_the_day(spark, lake_with_champion):
    settings = lake_with_champion()
    generate_history(settings, days=2, events_per_day=200, end_date=DAY, progress=False)

    result = spark_submit(
        "nightly_batch.py",
        "--set",
        f"storage.root={settings.storage.root}",
        "--set",
        f"storage.tracking_uri={settings.storage.mlflow_tracking_uri}",
        "--date",
        DAY.isoformat(),
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for step in ("ingest", "features", "champion checks", "score", "reconcile"):
        assert step in result.stdout
    lake = Lakehouse(settings, spark)
    silver = lake.table("silver", "events").read().where(F.col("event_date") == DAY)
    scored = lake.table("gold", "predictions_batch").read()
    assert scored.count() == silver.count() > 150
    assert {r.event_date for r in scored.select("event_date").distinct().collect()} == {DAY}
    assert lake.table("gold", "predictions").read().count() == silver.count()


def test_spark_submit_keeps_its_master_and_confs_and_medallion_fills_the_rest(tmp_path):
    script = tmp_path / "show_session.py"
    script.write_text(
        "from medallion.config import load_settings\n"
        "from medallion.spark import get_spark\n"
        "spark = get_spark(load_settings(environ={}))\n"
        "print('MASTER', spark.sparkContext.master)\n"
        "print('PARTITIONS', spark.conf.get('spark.sql.shuffle.partitions'))\n"
        "print('TIMEZONE', spark.conf.get('spark.sql.session.timeZone'))\n"
        "print('MEMORY', spark.sparkContext.getConf().get('spark.driver.memory'))\n"
    )
    options = ("--master", "local[1]", "--driver-memory", "1g", "--conf", "spark.sql.shuffle.partitions=3")
    result = spark_submit(script, options=options, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # conf/local.yaml says local[2], 4 partitions and 4g: what spark-submit was given wins.
    for line in ("MASTER local[1]", "PARTITIONS 3", "MEMORY 1g", "TIMEZONE UTC"):
        assert line in result.stdout
