"""The Java check every session and `medallion doctor` run before starting Spark."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from medallion.java import java_version, require_java


def test_the_java_check_reads_past_what_java_tool_options_prints(monkeypatch):
    """A JVM with JAVA_TOOL_OPTIONS set prints "Picked up ..." before its version banner."""
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-Dmedallion.test=1")
    major, banner = java_version()
    assert major >= 17 and "version" in banner
    require_java()  # does not mistake the notice for an old Java


def test_make_checks_java_as_spark_finds_it(tmp_path):
    """`make setup` checks the java Spark launches ($JAVA_HOME's first), past the notice."""
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "JAVA_TOOL_OPTIONS": "-Dmedallion.test=1"}
    env.pop("JAVA_HOME", None)
    passed = subprocess.run(["make", "-s", "java"], cwd=repo, env=env, capture_output=True, text=True)
    assert passed.returncode == 0, passed.stdout + passed.stderr

    missing = subprocess.run(
        ["make", "-s", "java", f"JAVA_HOME={tmp_path}"], cwd=repo, capture_output=True, text=True
    )
    assert missing.returncode != 0
    assert f"not found ({tmp_path}/bin/java)" in missing.stdout


def test_make_checks_the_python_it_builds_the_venv_from(tmp_path):
    """`make setup` refuses a missing or too old Python in one message, as it does Java."""
    repo = Path(__file__).resolve().parents[2]
    assert subprocess.run(["make", "-s", "python"], cwd=repo, capture_output=True).returncode == 0
    missing = subprocess.run(
        ["make", "-s", "python", f"PYTHON={tmp_path}/python3"], cwd=repo, capture_output=True, text=True
    )
    assert missing.returncode != 0 and "Python 3.11+ is required and was not found" in missing.stdout
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo 'Python 3.9.18' && exit 0\nexit 1\n")
    old.chmod(0o755)
    too_old = subprocess.run(
        ["make", "-s", "python", f"PYTHON={old}"], cwd=repo, capture_output=True, text=True
    )
    assert too_old.returncode != 0 and "Python 3.11+ required, found: Python 3.9.18" in too_old.stdout


def test_a_java_that_could_not_run_is_asked_again(tmp_path, monkeypatch):
    """A failed probe is not remembered: the same binary (same mtime), runnable now, is read."""
    java = tmp_path / "bin" / "java"
    java.parent.mkdir()
    java.write_text("#!/bin/sh\necho 'openjdk version \"17.0.99\" 2026-01-01' >&2\n")
    java.chmod(0o644)  # not executable: the probe fails with an OSError
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    assert java_version() is None
    java.chmod(0o755)  # chmod keeps the mtime, so the cache key is the same
    assert java_version() == (17, 'openjdk version "17.0.99" 2026-01-01')
