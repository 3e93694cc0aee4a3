"""PySpark's Python worker daemon, minus the fixed costs of every Python UDF task.

Local sessions built by :func:`medallion.spark.get_spark` start their Python workers
through this module (``spark.python.daemon.module``)::

    python -m medallion.worker_daemon pyspark.worker

Before each task PySpark's worker calls ``importlib.invalidate_caches()``, and a worker's
path holds pyspark.zip, py4j's zip and the spark-core jar (5,000 entries, no Python):

- on Python 3.10 and 3.11 every zipimporter then reads its archive's whole directory again
  (python/cpython#103200, fixed in 3.12), once per package imported from it;
- on a local master mlflow's ``spark_udf`` loads the model in every task, and loading checks
  each of the model's requirements with ``importlib_metadata.version``; the
  ``invalidate_caches`` call clears importlib_metadata's path cache too, so every task
  lists every archive on the path (the jar included) and finds and parses eight METADATA
  files again, about 100 ms of a scoring task's CPU.

Together up to about 300 ms per task before the UDF sees a row, on a path where a streaming
micro-batch scores in one task. Here the jar leaves the path, an archive is read again
only when it changed on disk, and a package's version is looked up once per worker. The
daemon forks every worker, so each one inherits these.
"""

from __future__ import annotations

import functools
import os
import sys
import zipfile
import zipimport


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


def reread_changed_archives_only() -> None:
    """Make ``zipimporter.invalidate_caches`` skip archives unchanged since it last read them."""
    reread = zipimport.zipimporter.invalidate_caches
    if getattr(reread, "medallion_lazy", False):
        return

    def invalidate_caches(self) -> None:
        stamp = _stamp(self.archive)
        if stamp is None or getattr(self, "_medallion_stamp", None) != stamp:
            reread(self)
            self._medallion_stamp = stamp

    invalidate_caches.medallion_lazy = True
    zipimport.zipimporter.invalidate_caches = invalidate_caches


def drop_archives_without_python(path: list[str]) -> list[str]:
    """Remove the ``.jar`` entries of ``path`` that hold no Python module; returns them."""
    dropped = []
    for entry in list(path):
        if entry.endswith(".jar") and not _holds_python(entry):
            path.remove(entry)
            sys.path_importer_cache.pop(entry, None)
            dropped.append(entry)
    return dropped


def _holds_python(archive: str) -> bool:
    try:
        with zipfile.ZipFile(archive) as jar:
            return any(name.endswith((".py", ".pyc")) for name in jar.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def remember_installed_versions() -> None:
    """Answer ``importlib_metadata.version`` from memory after a package's first lookup.

    The answer does not go stale in a way that matters: a worker keeps running the modules
    it has imported, whatever is installed on disk later.
    """
    try:
        import importlib_metadata
    except ImportError:  # mlflow requires it; without mlflow there is nothing to save
        return
    version = importlib_metadata.version
    if getattr(version, "medallion_remembered", False):
        return
    remembered = functools.lru_cache(maxsize=None)(version)
    remembered.medallion_remembered = True
    importlib_metadata.version = remembered


def lazy_zip_invalidation_needed() -> bool:
    return sys.version_info < (3, 12)


if __name__ == "__main__":
    drop_archives_without_python(sys.path)
    if lazy_zip_invalidation_needed():
        reread_changed_archives_only()
    remember_installed_versions()
    from pyspark import daemon

    daemon.manager()
