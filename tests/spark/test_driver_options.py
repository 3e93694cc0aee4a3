"""``spark.driver_java_options``: JVM options a local driver gets after medallion's own."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

PROBE = """
from pathlib import Path
from medallion.config import load_settings
from medallion.spark import get_spark
spark = get_spark(load_settings(directory=Path("conf")))
jvm = spark.sparkContext._jvm
print("probe=" + str(jvm.System.getProperty("medallion.probe")))
print("args=" + " ".join(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()))
"""


def _driver(options: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDALLION__")}
    env["MEDALLION__SPARK__DRIVER_JAVA_OPTIONS"] = options
    run = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return dict(line.split("=", 1) for line in run.stdout.splitlines() if "=" in line)


def test_driver_java_options_reach_the_driver_after_medallions_own():
    seen = _driver("-Dmedallion.probe=set -XX:TieredStopAtLevel=1")
    assert seen["probe"] == "set"
    arguments = seen["args"].split()
    assert "-XX:TieredStopAtLevel=1" in arguments
    # Added to medallion's options, not in their place: the driver's clock is still UTC.
    assert "-Duser.timezone=UTC" in arguments
    assert arguments.index("-Duser.timezone=UTC") < arguments.index("-Dmedallion.probe=set")
