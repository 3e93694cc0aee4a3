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
from medallion.spark import delta_jars, java_version


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


def _jars(settings: Settings) -> Check:
    jars = delta_jars(settings)
    if jars:
        return Check("delta-spark jars", True, ", ".join(Path(j).name for j in jars), required=False)
    return Check(
        "delta-spark jars",
        False,
        "not on the classpath (optional): the embedded rs engine is used; to get them add "
        "io.delta:delta-spark_2.13:4.0.0 to spark.jars.packages or a local jar to spark.jars",
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
        lambda: _jars(settings),
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
