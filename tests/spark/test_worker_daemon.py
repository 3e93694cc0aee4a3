"""``medallion.worker_daemon``: Python workers that do not re-read Spark's archives in every task."""

from __future__ import annotations

import importlib
import sys
import zipfile
import zipimport
from pathlib import Path

import pytest

from medallion import worker_daemon


@pytest.fixture
def lazy_zip_invalidation():
    """The patch applied in this process for one test, then taken back."""
    original = zipimport.zipimporter.invalidate_caches
    worker_daemon.reread_changed_archives_only()
    yield
    zipimport.zipimporter.invalidate_caches = original


def write_archive(path: Path, modules: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, source in modules.items():
            archive.writestr(f"{name}.py", source)


@pytest.fixture
def archive_on_path(tmp_path: Path, monkeypatch):
    archive = tmp_path / "lib.zip"
    write_archive(archive, {"medallion_zipped_a": "VALUE = 'a'\n"})
    monkeypatch.syspath_prepend(str(archive))
    yield archive
    for name in ("medallion_zipped_a", "medallion_zipped_b"):
        sys.modules.pop(name, None)
    sys.path_importer_cache.pop(str(archive), None)


def test_an_unchanged_archive_is_not_read_again(archive_on_path, lazy_zip_invalidation, monkeypatch):
    assert importlib.import_module("medallion_zipped_a").VALUE == "a"
    importlib.invalidate_caches()  # the first one reads it, and remembers what it read
    reads = []
    read_directory = zipimport._read_directory
    monkeypatch.setattr(zipimport, "_read_directory", lambda path: reads.append(path) or read_directory(path))
    for _ in range(3):
        importlib.invalidate_caches()  # what PySpark's worker does before every task
    assert str(archive_on_path) not in reads


def test_a_changed_archive_is_read_again(archive_on_path, lazy_zip_invalidation):
    assert importlib.import_module("medallion_zipped_a").VALUE == "a"
    importlib.invalidate_caches()
    write_archive(
        archive_on_path, {"medallion_zipped_a": "VALUE = 'a'\n", "medallion_zipped_b": "VALUE = 'b'\n"}
    )
    importlib.invalidate_caches()
    assert importlib.import_module("medallion_zipped_b").VALUE == "b"


def test_only_jars_without_python_leave_the_path(tmp_path: Path):
    classes, python_inside = tmp_path / "spark-core.jar", tmp_path / "bundled.jar"
    with zipfile.ZipFile(classes, "w") as jar:
        jar.writestr("org/apache/spark/SparkContext.class", b"\xca\xfe\xba\xbe")
    write_archive(python_inside, {"bundled": ""})
    path = [str(classes), str(python_inside), str(tmp_path / "pyspark.zip"), str(tmp_path / "missing.jar")]
    dropped = worker_daemon.drop_archives_without_python(path)
    assert dropped == [str(classes), str(tmp_path / "missing.jar")]
    assert path == [str(python_inside), str(tmp_path / "pyspark.zip")]


@pytest.fixture
def remembered_versions():
    import importlib_metadata

    original = importlib_metadata.version
    worker_daemon.remember_installed_versions()
    yield importlib_metadata
    importlib_metadata.version = original


def test_a_package_version_is_looked_up_once_per_worker(remembered_versions, monkeypatch):
    # mlflow checks the model's requirements with it every time a task loads the model.
    importlib_metadata = remembered_versions
    first = importlib_metadata.version("pyspark")
    lookups = []
    from_name = importlib_metadata.Distribution.from_name
    monkeypatch.setattr(
        importlib_metadata.Distribution,
        "from_name",
        classmethod(lambda cls, name: lookups.append(name) or from_name(name)),
    )
    assert importlib_metadata.version("pyspark") == first
    assert lookups == []
    importlib_metadata.version.__wrapped__("pyspark")  # what an uncached lookup does
    assert lookups == ["pyspark"]


def test_a_missing_package_is_still_missing(remembered_versions):
    importlib_metadata = remembered_versions
    for _ in range(2):
        with pytest.raises(importlib_metadata.PackageNotFoundError):
            importlib_metadata.version("medallion-no-such-package")


def _worker_view(_):
    import sys
    import zipimport

    import importlib_metadata

    yield (
        sys.modules["__main__"].__spec__.name,
        [entry for entry in sys.path if entry.endswith(".jar")],
        getattr(zipimport.zipimporter.invalidate_caches, "medallion_lazy", False),
        getattr(importlib_metadata.version, "medallion_remembered", False),
    )


def test_the_session_workers_start_through_the_medallion_daemon(spark):
    (main, jars, lazy, remembered), *_ = (
        spark.sparkContext.parallelize([0], 1).mapPartitions(_worker_view).collect()
    )
    assert main == "medallion.worker_daemon"
    assert jars == []
    assert lazy == worker_daemon.lazy_zip_invalidation_needed()
    assert remembered


def test_workers_of_another_interpreter_keep_pysparks_daemon(monkeypatch):
    from medallion.spark import worker_daemon_applies

    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    assert worker_daemon_applies()
    # Another interpreter may not have medallion installed: its daemon could not start.
    monkeypatch.setenv("PYSPARK_PYTHON", "/usr/bin/python3")
    assert not worker_daemon_applies()
