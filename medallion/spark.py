"""The SparkSession medallion runs on.

Usage::

    from medallion.config import load_settings
    from medallion.spark import get_spark

    spark = get_spark(load_settings())

    with session_conf(spark, {"spark.sql.shuffle.partitions": "8"}):
        ...                                  # actions here plan with the override

Where a session is already active (Databricks, a pyspark shell) it is returned untouched.
Under spark-submit the master, driver memory and every conf given to spark-submit are
kept, and medallion's settings fill in only what it left unset. Otherwise a local session
is built from the settings.
"""

from __future__ import annotations

import glob
import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from medallion.config import Settings
from medallion.java import archived_class_options, require_java

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
DELTA_TABLE_CLASS = "io.delta.tables.DeltaTable"


def delta_jars(settings: Settings) -> list[str]:
    """delta-spark jars a local session would have on its classpath: given in ``spark.jars``,
    shipped in ``$SPARK_HOME/jars``, or fetched into medallion's cache (:mod:`medallion.jvm`)."""
    from medallion import jvm

    candidates = [j for j in settings.spark.conf.get("spark.jars", "").split(",") if j]
    import pyspark

    for folder in (os.environ.get("SPARK_HOME"), os.path.dirname(pyspark.__file__)):
        if folder:
            candidates += glob.glob(os.path.join(folder, "jars", "*.jar"))
    given = [j for j in candidates if os.path.basename(j).startswith(("delta-spark", "delta-core"))]
    return given or jvm.usable_jars("delta")


def cached_jars(settings: Settings) -> tuple[list[str], bool]:
    """``(jars, delta)``: the cached jars a local session puts on ``spark.jars`` (Spark's Kafka
    connector and medallion's scoring jar always; delta-spark's unless ``delta.engine=rs``), and whether delta-spark's
    classes are among them (checked in the jar files, so the Delta extension is configured
    only where its classes load)."""
    from medallion import jvm

    jars = [*jvm.usable_jars("kafka"), *jvm.usable_scoring_jar()]
    delta = settings.delta.engine != "rs" and bool(jvm.usable_jars("delta"))
    if delta:
        jars += jvm.usable_jars("delta")
    return jars, delta


def worker_daemon_applies() -> bool:
    """Whether local Python workers should start through :mod:`medallion.worker_daemon`:
    only where their interpreter can import medallion (this one, with medallion installed)."""
    from importlib.metadata import PackageNotFoundError, distribution

    if os.path.realpath(os.environ.get("PYSPARK_PYTHON", "")) != os.path.realpath(sys.executable):
        return False
    try:
        distribution("medallion")
    except PackageNotFoundError:
        return False
    return True


def session_defaults(settings: Settings) -> dict[str, str]:
    """The confs every session medallion builds starts from (``spark.conf`` in settings and
    spark-submit's own confs go over them)."""
    return {
        # Local mode runs every task in the driver: Spark's 1g default spills caches to disk.
        "spark.driver.memory": settings.spark.driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        "spark.default.parallelism": str(settings.spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(settings.spark.arrow_max_records_per_batch),
        # Below Int.MaxValue, Spark 4 sums every Arrow vector's size after each row it sends a
        # pandas UDF, a large share of the cost of handing rows to the scoring UDF.
        # maxRecordsPerBatch bounds the batches instead (100k feature rows are about 12 MB).
        "spark.sql.execution.arrow.maxBytesPerBatch": str(2**31 - 1),
        # Every core runs a Python worker at once; Spark would give each worker's OpenMP pool
        # (the model's predict) all the cores, and the oversubscribed threads spin against
        # each other: one thread per worker scores faster.
        "spark.executorEnv.OMP_NUM_THREADS": "1",
        "spark.sql.adaptive.enabled": "true",
        # Delta hands Spark explicit file lists: listing them needs no distributed job,
        # which would otherwise cost every streaming micro-batch a few hundred ms.
        "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
        # delta-spark's VACUUM lists a table's directories in this many tasks (Spark's
        # default 10000): the deployment's scale, as for the shuffles.
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(settings.spark.shuffle_partitions),
        # INT96 timestamps carry no usable parquet stats; delta-spark forces micros too.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.ui.showConsoleProgress": "true",
        "spark.ui.enabled": "false",
        "spark.sql.streaming.stopGracefullyOnShutdown": "true",
        # The throughput collector: a local session's batch work (parsing, caching, Arrow
        # batches for the model) allocates fast and keeps little, and G1's concurrent
        # bookkeeping shows in an ingest's time (docs/performance.md, "Ingest").
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC -XX:+UseParallelGC",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    }


def _delta_conf(settings: Settings, submitted: bool) -> dict[str, str]:
    """``spark.jars`` (cached delta-spark and Kafka jars) and Delta's extension and catalog,
    where Delta's classes are there to load."""
    conf: dict[str, str] = {}
    if submitted:
        # spark-submit started the JVM with its own --jars/--packages: configure Delta only
        # if its classes load there.
        from pyspark import SparkContext

        delta = jvm_class_available_in(SparkContext._jvm, DELTA_TABLE_CLASS)
    else:
        jars, delta = cached_jars(settings)
        listed = [j for j in settings.spark.conf.get("spark.jars", "").split(",") if j]
        if jars:
            conf["spark.jars"] = ",".join([*listed, *jars])
        delta = delta or any(os.path.basename(j).startswith("delta-spark") for j in listed)
    if delta:
        conf["spark.sql.extensions"] = DELTA_EXTENSION
        conf["spark.sql.catalog.spark_catalog"] = DELTA_CATALOG
    return conf


def get_spark(settings: Settings):
    """The active SparkSession if there is one, else a session built from ``settings``
    (under spark-submit, on spark-submit's master and confs)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active

    java_banner = require_java()
    # Python UDF workers must run this interpreter, or they lose the venv's packages.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)

    conf = session_defaults(settings)
    # spark-submit starts the JVM and hands its port to this process.
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ
    given = _submitted_conf() if submitted else {}
    master = given.get("spark.master", settings.spark.master)
    # Only local workers are sure to run this interpreter; a cluster's may lack medallion.
    if master.startswith("local") and worker_daemon_applies():
        conf["spark.python.daemon.module"] = "medallion.worker_daemon"
    # delta-spark replays a table's log in this many tasks (default 50), whatever the table's
    # size: the shuffle partitions are the settings' measure of the deployment's scale
    # (conf/databricks.yaml's 200, local's 4), so the log replay follows them.
    conf["spark.databricks.delta.snapshotPartitions"] = str(settings.spark.shuffle_partitions)
    conf.update(_delta_conf(settings, submitted))
    if not submitted:
        # A fresh driver maps the classes `make setup` archived instead of loading them again.
        if archived := archived_class_options(java_banner):
            conf["spark.driver.extraJavaOptions"] += f" {archived}"
        if extra := settings.spark.driver_java_options.strip():
            conf["spark.driver.extraJavaOptions"] += f" {extra}"
    conf.update({k: v for k, v in settings.spark.conf.items() if k != "spark.jars" or submitted})

    if submitted:
        builder = SparkSession.builder
        # The driver JVM is already running: its memory and options are spark-submit's.
        launch_only = {"spark.driver.memory", "spark.driver.extraJavaOptions"}
        conf = {key: value for key, value in conf.items() if key not in given and key not in launch_only}
    else:
        builder = SparkSession.builder.master(settings.spark.master).appName(settings.spark.app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings.spark.log_level)
    return spark


def _submitted_conf() -> dict[str, str]:
    """The confs spark-submit gave the JVM it started (its master, memory, --conf ...)."""
    from pyspark import SparkConf, SparkContext

    # A SparkConf reads the JVM's system properties only once the gateway is connected.
    SparkContext._ensure_initialized()
    return dict(SparkConf().getAll())


_LOCAL_MASTER = re.compile(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?$")


def task_slots(context) -> int:
    """How many tasks the session runs at once.

    On a local master that is its thread count (``local[2]`` -> 2), whatever
    ``spark.default.parallelism`` says (medallion sets it to the shuffle partitions);
    elsewhere Spark's default parallelism, the executors' total cores.
    """
    local = _LOCAL_MASTER.match(context.master)
    if local is None:
        return context.defaultParallelism
    threads = local.group(1)
    if threads is None:
        return 1
    return (os.cpu_count() or 1) if threads == "*" else int(threads)


def jvm_class_available(spark, class_name: str) -> bool:
    """True if the session's JVM can load ``class_name`` (jars from spark.jars or --packages included)."""
    return jvm_class_available_in(spark.sparkContext._jvm, class_name)


def jvm_class_available_in(jvm, class_name: str) -> bool:
    """:func:`jvm_class_available` for a py4j gateway's JVM view (before a session exists)."""
    try:
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        jvm.java.lang.Class.forName(class_name, False, loader)
    except Exception:  # py4j wraps ClassNotFoundException; any failure means "not loadable"
        return False
    return True


# Session confs are shared by every thread of the session: the ingest queries of both feeds,
# the speed layer and a reconcile can each be inside a ``session_conf`` block at once.
_overrides_lock = threading.Lock()
_open_overrides: dict[tuple[int, str], list] = {}  # (session, key) -> [value before, open blocks]


@contextmanager
def session_conf(spark, overrides: Mapping[str, str]) -> Iterator[None]:
    """Set SQL confs for the actions run inside the block, then restore what was there.

    A DataFrame is planned when an action runs, so the override must cover the action,
    not the code that built the frame. Blocks may overlap, in one thread or several: the
    value from before the first block comes back when the last one ends (while two
    overlapping blocks set different values for one key, the later one holds).
    """
    with _overrides_lock:
        for key, value in overrides.items():
            held = _open_overrides.setdefault((id(spark), key), [spark.conf.get(key, None), 0])
            held[1] += 1
            spark.conf.set(key, value)
    try:
        yield
    finally:
        with _overrides_lock:
            for key in overrides:
                held = _open_overrides[(id(spark), key)]
                held[1] -= 1
                if held[1] == 0:
                    del _open_overrides[(id(spark), key)]
                    if held[0] is None:
                        spark.conf.unset(key)
                    else:
                        spark.conf.set(key, held[0])
