"""The JVM parts: the pinned pyspark/delta-spark pair, the jar cache and its integrity checks."""

from __future__ import annotations

import json
import zipfile

from medallion import jvm


def test_the_installed_pair_is_the_supported_one_and_a_mismatch_says_what_to_run(monkeypatch):
    assert jvm.check_pair() is None
    assert jvm.DELTA_FOR_SPARK[jvm.spark_version()] == jvm.delta_version()
    monkeypatch.setattr(jvm, "delta_version", lambda: "4.0.1")
    assert (
        jvm.check_pair()
        == f"pyspark {jvm.spark_version()} needs delta-spark 4.4.0, found 4.0.1: run make setup"
    )
    monkeypatch.setattr(jvm, "spark_version", lambda: "4.1.1")
    assert jvm.check_pair().startswith("pyspark 4.1.1 is not a supported Spark line")


def test_doctor_names_the_pair(settings):
    from medallion.doctor import run_checks

    checks = {c.name: c for c in run_checks(settings) if c.name in ("spark/delta pair", "delta-spark jars")}
    assert (
        checks["spark/delta pair"].ok
        and "pyspark 4.2.0 with delta-spark 4.4.0" in checks["spark/delta pair"].detail
    )
    assert checks["delta-spark jars"].ok


def test_artifact_names_from_ivy_and_pyspark_jar_names():
    assert jvm.artifact_name("org.apache.kafka_kafka-clients-3.9.2.jar") == "kafka-clients"
    assert jvm.artifact_name("io.delta_delta-spark_4.2_2.13-4.4.0.jar") == "delta-spark_4.2_2.13"
    assert jvm.artifact_name("jackson-core-2.21.2.jar") == "jackson-core"
    assert jvm.artifact_name("scala-library-2.13.18.jar") == "scala-library"


def test_a_truncated_or_foreign_cache_is_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDALLION_JARS_DIR", str(tmp_path))
    folder = jvm.bundle_dir("delta")
    folder.mkdir(parents=True)
    good = folder / "io.delta_delta-spark.jar"
    with zipfile.ZipFile(good, "w") as jar:
        jar.writestr("io/delta/tables/DeltaTable.class", b"\xca\xfe")
    manifest = {"coordinates": list(jvm.bundles()["delta"].coordinates), "jars": [good.name]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert jvm.usable_jars("delta") == [str(good)]

    good.write_bytes(good.read_bytes()[:20])  # a download cut short
    assert jvm.usable_jars("delta") == []

    manifest["coordinates"] = ["io.delta:delta-spark_2.13:3.0.0"]  # fetched for another pair
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert jvm.jars("delta") == []


def test_the_scoring_jar_is_built_from_its_source_and_again_when_the_source_changes(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("MEDALLION_JARS_DIR", str(tmp_path / "cache"))
    source = tmp_path / "java"
    shutil.copytree(jvm.SCORING_SOURCE, source)
    monkeypatch.setattr(jvm, "SCORING_SOURCE", source)
    assert jvm.usable_scoring_jar() == []
    assert jvm.build_scoring_jar(log=lambda _: None) == "built"
    (first,) = jvm.usable_scoring_jar()
    assert jvm.build_scoring_jar(log=lambda _: None) == "cached"

    (java,) = source.rglob("TreeEnsemble.java")
    java.write_text(java.read_text() + "\n// changed\n")
    assert jvm.usable_scoring_jar() == []  # named by its source: the old jar is not this source's
    assert jvm.build_scoring_jar(log=lambda _: None) == "built"
    (second,) = jvm.usable_scoring_jar()
    assert second != first

    java.write_text(java.read_text().replace("public final class", "public final klass"))
    assert jvm.build_scoring_jar(log=lambda _: None).startswith("javac failed: ")
    assert jvm.usable_scoring_jar() == []


def test_a_session_gets_the_scoring_jar_and_the_classpath_lists_it(spark):
    from medallion.model.native.walker import WALKER_CLASS
    from medallion.spark import jvm_class_available

    (jar,) = jvm.usable_scoring_jar()
    assert jar in spark.conf.get("spark.jars") and jvm_class_available(spark, WALKER_CLASS)
    import subprocess
    import sys

    listed = subprocess.run(
        [sys.executable, "-m", "medallion.jvm", "classpath"], capture_output=True, text=True, check=True
    )
    assert jar in listed.stdout.strip().split(",")  # what spark-submit --jars gets


def test_the_walker_scores_its_text_and_refuses_one_whose_walk_could_not_end(spark):
    import math

    import pytest
    from pyspark.sql import functions as F

    from medallion.jvm_udf import jvm_function
    from medallion.model.native.walker import WALKER_CLASS

    # One split on input 0 at 1.0, missing values left: leaves +0.5 and -0.5 over a baseline of 0.
    text = "medallion-trees 1 1 0x0.0p+0\nT 3\nN 0 0x1.0p+0 1 1 2\nL 0x1.0p-1\nL -0x1.0p-1"
    walk = jvm_function(spark, WALKER_CLASS, text)
    frame = spark.createDataFrame([(0.5,), (2.0,), (math.nan,)], "x double")
    assert [r.raw for r in frame.select(walk(F.struct("x")).alias("raw")).collect()] == [0.5, -0.5, 0.5]
    looped = text.replace("N 0 0x1.0p+0 1 1 2", "N 0 0x1.0p+0 1 0 2")  # a node that is its own child
    with pytest.raises(RuntimeError, match="children must come after it"):
        jvm_function(spark, WALKER_CLASS, looped)
    # Two trees: a child of the first may not point into the second, and each tree holds the
    # nodes its T line declares.
    two = text + "\nT 1\nL 0x1.0p-2"
    assert [
        r.raw
        for r in frame.select(jvm_function(spark, WALKER_CLASS, two)(F.struct("x")).alias("raw")).collect()
    ] == [0.75, -0.25, 0.75]
    leaking = two.replace("N 0 0x1.0p+0 1 1 2", "N 0 0x1.0p+0 1 1 3")
    with pytest.raises(RuntimeError, match="inside its tree"):
        jvm_function(spark, WALKER_CLASS, leaking)
    with pytest.raises(RuntimeError, match="the tree before has 3 nodes, its T line declares 4"):
        jvm_function(spark, WALKER_CLASS, two.replace("T 3", "T 4"))
    with pytest.raises(RuntimeError, match="more nodes than the tree's T line declares"):
        jvm_function(spark, WALKER_CLASS, two + "\nL 0x0.0p+0")
    with pytest.raises(RuntimeError, match="the last tree has 1 nodes, its T line declares 2"):
        jvm_function(spark, WALKER_CLASS, two.replace("T 1", "T 2"))


def test_setup_offline_warns_per_bundle_and_succeeds(tmp_path):
    """`make setup` where Maven Central cannot be reached: the fetch says which jars are missing
    and what still works, and exits 0 (setup goes on; the embedded engine needs no jars)."""
    import os
    import subprocess
    import sys

    from medallion.kafka.broker import free_port
    from tests.conftest import REPO

    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDALLION")}
    env["MEDALLION_JARS_DIR"] = str(tmp_path / "empty-cache")
    # Offline as Ivy sees it: every download through a proxy on a port nothing listens on,
    # and an empty home, so no local Maven or Ivy cache answers instead.
    dead = free_port()
    env["SPARK_SUBMIT_OPTS"] = (
        f"-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort={dead} "
        f"-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort={dead} -Duser.home={tmp_path / 'home'}"
    )
    done = subprocess.run(
        [sys.executable, "-m", "medallion.jvm", "fetch", "delta", "kafka"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert [line.split()[1] for line in warnings] == ["delta", "kafka"], done.stderr[-3000:]
    assert all(
        "could not resolve" in line and "the embedded Delta engine still works" in line for line in warnings
    )
    assert "Traceback" not in done.stderr
    assert not list((tmp_path / "empty-cache").rglob("*.jar"))
