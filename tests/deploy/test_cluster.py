"""On a real Spark cluster, not only local[2]: a standalone master and two workers on loopback.

Each worker is its own JVM with its own Python workers, so nothing may rely on the driver
and the executors sharing a process: model loading, the embedded engine committing files
the executors wrote, checkpoints, the Python worker daemon.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from medallion.datagen import generate_history
from medallion.kafka.broker import free_port
from medallion.spark import session_defaults
from medallion.tables import Lakehouse
from tests.conftest import HISTORY_END, SHORT_DRIVER_JAVA_OPTIONS
from tests.deploy.test_jobs import clean_environ, spark_submit


class StandaloneCluster:
    """``spark-class`` Master and Workers, each a process of its own, on 127.0.0.1."""

    def __init__(self, folder: Path, workers: int = 2) -> None:
        import pyspark

        self.folder = folder
        self.spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
        self.port = free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        # The master and the workers live for one test: C1 alone compiles what they run, as it
        # does the suite's other short-lived JVMs (tests/conftest.py).
        self.env = clean_environ(
            SPARK_LOCAL_IP="127.0.0.1",
            SPARK_NO_DAEMONIZE="1",
            SPARK_DAEMON_JAVA_OPTS=SHORT_DRIVER_JAVA_OPTIONS,
        )
        self.processes: list[subprocess.Popen] = []
        self.workers = workers

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        log = (self.folder / f"{name}.log").open("wb")
        process = subprocess.Popen(
            [str(self.spark_class), *args], stdout=log, stderr=subprocess.STDOUT, env=self.env
        )
        self.processes.append(process)
        return process

    def __enter__(self) -> StandaloneCluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._start(
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--webui-port",
            str(free_port()),
        )
        for n in range(self.workers):
            self._start(
                f"worker-{n}",
                "org.apache.spark.deploy.worker.Worker",
                "--host",
                "127.0.0.1",
                "--cores",
                "1",
                "--memory",
                "1500m",
                "--webui-port",
                str(free_port()),
                "--work-dir",
                str(self.folder / f"work-{n}"),
                self.url,
            )
        deadline = time.monotonic() + 180
        master_log = self.folder / "master.log"
        while time.monotonic() < deadline:
            if (
                master_log.exists()
                and master_log.read_text(errors="replace").count("Registering worker") >= self.workers
            ):
                return self
            time.sleep(0.5)
        self.__exit__(None, None, None)
        raise AssertionError(f"the cluster did not start:\n{master_log.read_text(errors='replace')[-2000:]}")

    def __exit__(self, *exc) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with StandaloneCluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.mark.heavy
@pytest.mark.usefixtures("delta_engine")
def test_the_stream_and_the_night_run_on_a_standalone_cluster(spark, lake_with_champion, cluster):
    settings = lake_with_champion("datagen.files_per_day=3", "datagen.late_fraction=0")
    day = HISTORY_END
    generate_history(settings, days=1, events_per_day=120, end_date=day, progress=False)
    executor_options = session_defaults(settings)["spark.executor.extraJavaOptions"]
    options = (
        "--master",
        cluster.url,
        "--total-executor-cores",
        "2",
        "--executor-memory",
        "1g",
        "--driver-memory",
        "1g",
        # The executors live for one job too; a --conf replaces medallion's default for the
        # option, so medallion's own options stay in it.
        "--conf",
        f"spark.executor.extraJavaOptions={executor_options} {SHORT_DRIVER_JAVA_OPTIONS}",
    )
    if settings.delta.engine == "spark":
        classpath = subprocess.run(
            [sys.executable, "-m", "medallion.jvm", "classpath"], capture_output=True, text=True, check=True
        ).stdout.strip()
        options += ("--jars", classpath)
    conf = (
        "--set",
        f"storage.root={settings.storage.root}",
        "--set",
        f"storage.tracking_uri={settings.storage.mlflow_tracking_uri}",
        "--set",
        f"delta.engine={settings.delta.engine}",
    )
    stream = spark_submit(
        "stream_score.py", *conf, "--set", "stream.trigger.kind=availableNow", options=options, timeout=900
    )
    assert stream.returncode == 0, stream.stdout[-3000:] + stream.stderr[-3000:]
    night = spark_submit("nightly_batch.py", *conf, "--date", day.isoformat(), options=options, timeout=900)
    assert night.returncode == 0, night.stdout[-3000:] + night.stderr[-3000:]

    lake = Lakehouse(settings, spark)
    silver = lake.table("silver", "events").read().where(F.col("event_date") == F.lit(day))
    ids = {r.event_id for r in silver.select("event_id").collect()}
    assert len(ids) > 50
    speed = lake.table("gold", "predictions_speed").read().where(F.col("event_date") == F.lit(day))
    batch = lake.table("gold", "predictions_batch").read().where(F.col("event_date") == F.lit(day))
    assert {r.event_id for r in speed.select("event_id").collect()} == ids
    assert {r.event_id for r in batch.select("event_id").collect()} == ids
    assert batch.count() == len(ids)
    # The executors ran the tasks: the application's executors were the workers' processes.
    assert any(Path(cluster.folder).glob("work-*/app-*/*/stderr"))
