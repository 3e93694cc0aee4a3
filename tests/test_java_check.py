"""The Java check every session and `medallion doctor` run before starting Spark."""

from __future__ import annotations

from medallion.spark import java_version, require_java


def test_the_java_check_reads_past_what_java_tool_options_prints(monkeypatch):
    """A JVM with JAVA_TOOL_OPTIONS set prints "Picked up ..." before its version banner."""
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-Dmedallion.test=1")
    major, banner = java_version()
    assert major >= 17 and "version" in banner
    require_java()  # does not mistake the notice for an old Java
