"""The class-data-sharing archive `make setup` dumps: fresh Spark processes map it, and a
changed JVM or jar set gets a new one instead of a stale one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from medallion import class_archive
from medallion.java import archive_path, archived_class_options

TOP_LAYER = "source: shared objects file (top)"


def _classes_from_the_archive(tmp_path: Path) -> int:
    """Start Spark through `medallion doctor` and count the driver's classes HotSpot took from
    the archive (its top layer: the JDK's own base archive is the bottom one)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    run = subprocess.run(
        [sys.executable, "-m", "medallion.cli", "--set", f"storage.root={tmp_path / 'root'}", "doctor"],
        env={
            **os.environ,
            "JAVA_TOOL_OPTIONS": f"-Xlog:class+load=info:file={logs}/%p.log",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    # The driver is the JVM that loaded the most classes (`java -version` loads a few hundred).
    driver = max(logs.glob("*.log"), key=lambda log: log.stat().st_size)
    return driver.read_text().count(TOP_LAYER)


def test_a_spark_process_medallion_starts_maps_the_archive_setup_dumped(tmp_path):
    path = archive_path()
    assert path is not None and path.is_file(), f"no class archive at {path}: make setup dumps it"
    assert _classes_from_the_archive(tmp_path) > 5000


def test_a_new_jar_or_java_names_a_new_archive_and_none_is_used_until_dumped(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDALLION_JARS_DIR", str(tmp_path))
    monkeypatch.delenv("MEDALLION_CLASS_ARCHIVE", raising=False)
    before = archive_path('openjdk version "17.0.15"')
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "extra-1.0.jar").write_bytes(b"PK")
    after_jar = archive_path('openjdk version "17.0.15"')
    other_java = archive_path('openjdk version "21.0.5"')
    assert len({before, after_jar, other_java}) == 3
    assert archived_class_options('openjdk version "21.0.5"') == ""
    other_java.parent.mkdir(parents=True, exist_ok=True)
    other_java.write_bytes(b"")
    assert f"-XX:SharedArchiveFile={other_java}" in archived_class_options('openjdk version "21.0.5"')
    monkeypatch.setenv("MEDALLION_CLASS_ARCHIVE", "off")
    assert archived_class_options('openjdk version "21.0.5"') == ""


def test_without_java_there_is_no_archive_to_use(monkeypatch):
    monkeypatch.setenv("JAVA_HOME", "/nonexistent-jdk")
    assert archive_path() is None
    assert archived_class_options() == ""
    assert class_archive.dump() == "no java"


def test_setup_goes_on_when_no_archive_can_be_dumped(monkeypatch, capsys):
    def fails(log=print):
        raise RuntimeError("the JVM could not start")

    monkeypatch.setattr(class_archive, "dump", fails)
    assert class_archive.main([]) == 0
    assert "warning: no class archive (RuntimeError: the JVM could not start)" in capsys.readouterr().err
