"""``medallion doctor``: is this machine ready to run medallion, and which Delta engine will it use?

Usage::

    from medallion.doctor import run_checks

    for check in run_checks(settings):
        print(check.name, check.ok, check.detail)
"""

from __future__ import annotations

import importlib.metadata
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from medallion.config import Settings
from medallion.errors import MedallionError
from medallion.java import archive_path, java_version
from medallion.spark import delta_jars


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report. ``required`` checks that fail make the exit non-zero."""

    name: str
    ok: bool
    detail: str
    required: bool = True


def _package(name: str, import_name: str | None = None) -> Check:
    try:
        version = importlib.metadata.version(name)
        __import__(import_name or name)
    except (importlib.metadata.PackageNotFoundError, ImportError) as exc:
        return Check(name, False, f"not importable ({exc}): run make setup")
    return Check(name, True, version)


def _python() -> Check:
    ok = sys.version_info >= (3, 11)
    return Check(
        "python", ok, f"{sys.version.split()[0]} at {sys.executable}" + ("" if ok else " (need >= 3.11)")
    )


def _java() -> Check:
    found = java_version()
    if found is None:
        return Check("java", False, "not found: install OpenJDK 17+ or set JAVA_HOME")
    major, banner = found
    return Check("java", major >= 17, banner + ("" if major >= 17 else " (need 17+)"))


def _storage(settings: Settings) -> Check:
    root = settings.storage.root_path
    if settings.env == "databricks" and not root.parent.exists():
        return Check("storage root", False, f"{root}: not reachable from this machine", required=False)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("storage root", False, f"{root}: not writable ({exc.strerror}); set storage.root")
    return Check("storage root", True, f"{root} writable")


def _pair() -> Check:
    from medallion import jvm

    problem = jvm.check_pair()
    pair = f"pyspark {jvm.spark_version()} with delta-spark {jvm.delta_version() or '(not installed)'}"
    return Check("spark/delta pair", problem is None, problem or pair)


def _jars(settings: Settings) -> Check:
    jars = delta_jars(settings)
    if jars:
        return Check("delta-spark jars", True, f"{len(jars)} jars, {Path(jars[0]).parent}", required=False)
    from medallion import jvm

    needed = settings.delta.engine == "spark"
    return Check(
        "delta-spark jars",
        False,
        f"not fetched ({jvm.bundles()['delta'].describe()}): the embedded rs engine serves; "
        f"to get them {jvm.how_to_fetch('delta')}",
        required=needed,
    )


def _class_archive() -> Check:
    path = archive_path()
    if path is not None and path.is_file():
        return Check("class archive", True, f"{path} (Spark processes start warm)", required=False)
    return Check(
        "class archive",
        False,
        "none for this java and these jars: Spark processes load their classes cold; "
        "run make setup (or python -m medallion.class_archive)",
        required=False,
    )


def _kafka_jars(settings: Settings) -> Check:
    from medallion import jvm

    needed = "kafka" in (settings.stream.source, settings.stream.sink)
    found = jvm.usable_jars("kafka")
    if found:
        return Check("kafka connector", True, f"{len(found)} jars, {Path(found[0]).parent}", required=False)
    return Check(
        "kafka connector",
        False,
        f"not fetched ({jvm.bundles()['kafka'].describe()}): stream.source kafka needs it; "
        f"{jvm.how_to_fetch('kafka')}",
        required=needed,
    )


def _scoring_jar() -> Check:
    from medallion import jvm

    found = jvm.usable_scoring_jar()
    if found:
        return Check(
            "scoring jar", True, f"{found[0]} (native scoring walks its trees in the JVM)", required=False
        )
    why = "no javac (a JDK) here" if jvm.javac() is None else "not built"
    return Check(
        "scoring jar",
        False,
        f"{why}: native scoring runs its trees as SQL expressions (slower per query); "
        "to build it run make setup (or python -m medallion.jvm fetch scoring) with a JDK",
        required=False,
    )


def _spark_and_engine(settings: Settings) -> Iterator[Check]:
    try:
        from medallion.spark import get_spark

        spark = get_spark(settings)
        spark.range(1).count()
    except MedallionError as exc:
        yield Check("spark", False, str(exc))
        return
    yield Check("spark", True, f"pyspark {spark.version}, master {spark.sparkContext.master}")
    try:
        from medallion.tables import resolve_engine

        engine, reason = resolve_engine(spark, settings)
    except MedallionError as exc:
        yield Check("delta engine", False, str(exc))
        return
    yield Check("delta engine", True, f"{settings.delta.engine} -> {engine}: {reason}")


def run_checks(settings: Settings) -> Iterator[Check]:
    """Yield checks one by one, cheapest first, so a slow one (starting the JVM) shows progress."""
    simple: list[Callable[[], Check]] = [
        _python,
        _java,
        lambda: _package("pyspark"),
        lambda: _package("delta-spark", "delta"),
        lambda: _package("deltalake"),
        lambda: _package("mlflow"),
        _pair,
        lambda: _jars(settings),
        lambda: _kafka_jars(settings),
        _scoring_jar,
        _class_archive,
        lambda: _storage(settings),
    ]
    results = []
    for check in simple:
        result = check()
        results.append(result)
        yield result
    if all(r.ok for r in results if r.name in ("java", "pyspark")):
        yield from _spark_and_engine(settings)
    else:
        yield Check("spark", False, "skipped: needs java and pyspark")
