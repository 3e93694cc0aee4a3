"""README's spark-submit block, run as written on a fresh storage root.

The commands are taken from README.md verbatim and run in one bash from the repository (as a
new user would paste them); only the environment points them at this test's storage root and
shrinks the generated history (``MEDALLION__*``).
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from tests.conftest import HISTORY_END, REPO, SHORT_DRIVER_JAVA_OPTIONS, TODAY
from tests.deploy.test_bundle import delta_rows
from tests.deploy.test_jobs import readme_block


@pytest.mark.heavy
def test_the_readme_spark_submit_block_runs_as_written(tmp_path):
    block = readme_block("spark-submit")
    assert "jobs/features.py" in block and "jobs/validate_promote.py" in block
    root = tmp_path / "lake"
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("MEDALLION", "PYSPARK", "VIRTUAL_ENV"))
    }
    # Outside the venv, as a new shell is: the block's own first line activates it.
    environ["PATH"] = os.pathsep.join(p for p in environ["PATH"].split(os.pathsep) if ".venv" not in p)
    # The block sets SPARK_SUBMIT_OPTS itself; the suite's short-lived drivers compile with C1
    # only (tests/conftest.py), which here only the JVM's own variable can add.
    environ["JDK_JAVA_OPTIONS"] = SHORT_DRIVER_JAVA_OPTIONS
    environ.update(
        MEDALLION__STORAGE__ROOT=str(root),
        MEDALLION__CLOCK__TODAY=TODAY.isoformat(),
        MEDALLION__DATAGEN__DAYS="5",
        MEDALLION__DATAGEN__EVENTS_PER_DAY="400",
        MEDALLION__DATAGEN__CARDS="300",
        MEDALLION__MODEL__TRAIN__MAX_ITER="60",
        COLUMNS="200",
    )
    log = tmp_path / "block.log"  # bash -x puts each command before its output
    with log.open("w") as out:
        shell = subprocess.Popen(
            ["bash", "-e", "-x", "-c", block],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=environ,
            start_new_session=True,  # a timeout stops the running spark-submit too
        )
        try:
            code = shell.wait(timeout=2400)
        except subprocess.TimeoutExpired:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
            raise AssertionError(
                "timed out; the command running was the last one here:\n" + log.read_text()[-6000:]
            ) from None
    output = log.read_text()
    assert code == 0, output[-6000:]
    assert "champion is now v1" in output
    assert "SPARK_SUBMIT_OPTS=-XX:SharedArchiveFile=" in output  # setup's class archive, for the drivers

    silver = delta_rows(root, "silver", "events", HISTORY_END)
    assert len(silver) > 300
    assert len(delta_rows(root, "gold", "predictions_batch", HISTORY_END)) == len(silver)
    assert len(delta_rows(root, "gold", "predictions", HISTORY_END)) == len(silver)
    assert list((root / "checkpoints").iterdir())  # the stream's
    assert list((root / "reports").glob("run-*.html"))
