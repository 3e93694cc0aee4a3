"""The jobs/ entry points under a real `spark-submit`, as a scheduler would run them.

Every stage has a job (ingest, features, train, validate/promote, batch, reconcile, stream,
report). The nightly chain runs them in tests/deploy/test_bundle.py and README's spark-submit block in
tests/deploy/test_readme_commands.py; the first test here checks that together they run every job.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

from medallion.java import archived_class_options
from tests.conftest import REPO, SHORT_DRIVER_JAVA_OPTIONS

STAGES = {
    "ingest": "ingest.py",
    "features": "features.py",
    "train": "train.py",
    "validate/promote": "validate_promote.py",
    "batch": "nightly_batch.py",
    "reconcile": "reconcile.py",
    "stream": "stream_score.py",
    "report": "report.py",
    "materialize": "materialize.py",
}


def clean_environ(**extra: str) -> dict[str, str]:
    """The caller's environment without its medallion settings, plus ``extra``. MLflow's
    URIs go too: ``mlflow.set_tracking_uri`` exports them, so an earlier test's registry would
    otherwise reach the job."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MEDALLION__", "MEDALLION_ENV", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"))
    }
    # spark-submit's drivers as the README starts them (SPARK_SUBMIT_OPTS maps setup's class
    # archive), compiling with C1 only as the suite's short-lived drivers do (tests/conftest.py).
    submit_opts = f"{archived_class_options()} {SHORT_DRIVER_JAVA_OPTIONS}".strip()
    return {
        **env,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "SPARK_SUBMIT_OPTS": submit_opts,
        **extra,
    }


def spark_submit(
    job: str | Path,
    *args: str,
    options: tuple[str, ...] = ("--master", "local[2]", "--driver-memory", "1g"),
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run ``job`` (a file under jobs/, or any script) under the real spark-submit."""
    spark_submit = Path(sys.executable).parent / "spark-submit"
    script = job if isinstance(job, Path) else REPO / "jobs" / job
    return subprocess.run(
        [str(spark_submit), *options, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_environ() if env is None else dict(env),
        cwd=REPO,
    )


def readme_block(heading: str) -> str:
    """The first ```bash block under README's ``## <heading>``."""
    readme = (REPO / "README.md").read_text()
    section = readme.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def test_every_stage_has_a_thin_job_and_a_spark_submit_test_runs_it():
    for stage, name in STAGES.items():
        job = REPO / "jobs" / name
        assert job.is_file(), f"no jobs/ entry for {stage}"
        # A thin wrapper: one medallion.cli.main call, no logic of its own.
        code = [line for line in job.read_text().split('"""')[-1].splitlines() if line.strip()]
        assert code[-1].strip().startswith("sys.exit(main(["), f"{name} is not a thin CLI call"
        assert len(code) == 4, code
    nightly = yaml.safe_load((REPO / "resources" / "nightly.yml").read_text())
    chain = {
        Path(task["spark_python_task"]["python_file"]).name
        for task in nightly["resources"]["jobs"]["medallion_nightly"]["tasks"]
    }
    in_readme = set(re.findall(r"spark-submit [^\n]*?jobs/(\w+\.py)", readme_block("spark-submit")))
    assert set(STAGES.values()) <= chain | in_readme
    assert {p.name for p in (REPO / "jobs").glob("*.py")} <= chain | in_readme


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
