"""The wheel is what a cluster installs: it carries conf/, and leaves pyspark to the platform."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from email.parser import Parser

from tests.conftest import REPO


def test_the_wheel_ships_conf_and_loads_the_databricks_env_outside_the_repo(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("medallion-*.whl")
    installed = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(installed)
    for env in ("base", "local", "databricks"):
        assert f"medallion/conf/{env}.yaml" in names
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    requires = Parser().parsestr((installed / metadata).read_text()).get_all("Requires-Dist")
    # A cluster's own pyspark and delta-spark stay: the wheel asks for them only with [local].
    for platform_package in ("pyspark", "delta-spark"):
        for requirement in requires:
            if requirement.startswith(platform_package):
                assert "extra ==" in requirement, requirement

    # From a directory with no conf/ of its own, the unpacked wheel first on the path.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MEDALLION", "PYTHONPATH"))}
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, medallion.cli; print('FROM', medallion.cli.__file__, flush=True); "
            "sys.exit(medallion.cli.main(['config', 'show', '--env', 'databricks']))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=elsewhere,
        env={**environ, "PYTHONPATH": str(installed), "COLUMNS": "200"},
    )
    assert shown.returncode == 0, shown.stdout[-2000:] + shown.stderr[-2000:]
    assert f"FROM {installed}" in shown.stdout
    assert "root: /Volumes/main/medallion/lakehouse" in shown.stdout
    assert "engine: spark" in shown.stdout
