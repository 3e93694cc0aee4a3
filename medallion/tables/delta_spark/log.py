"""A table's txns read from its ``_delta_log`` as the Delta protocol defines them.

delta-spark has no public API for a table's txns, and its DeltaLog class has another package
on Databricks, so the log is replayed here: the newest complete checkpoint, then the commits
after it, read by Spark and listed through Hadoop's FileSystem.

Usage::

    from medallion.tables.delta_spark.log import interval_ms, newest_txn

    newest_txn(spark, "/lake/tables/silver/events", "ingest:events", head=42)
    # (7, 1763625600000, {"delta.setTransactionRetentionDuration": "2 weeks"}) or None
    interval_ms(path, "2 weeks")             # how long delta-spark keeps a txn: 1209600000.0
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Sequence
from functools import reduce
from typing import TYPE_CHECKING, Any

from medallion.errors import MedallionError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

TXN_RETENTION_PROPERTY = "delta.setTransactionRetentionDuration"

# A checkpoint's file in _delta_log (the Delta protocol's names): classic (one file),
# multi-part (part i of n) or V2 (a UUID; its adds may sit in sidecars, but its txn and
# metaData actions are in this file).
_CHECKPOINT_FILE = re.compile(
    r"^(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10})|\.[0-9a-fA-F-]+)?\.(parquet|json)$"
)
# The parts of the log's actions that decide a txn's version: as delta-spark replays them.
_TXN_ACTIONS = (
    "txn struct<appId: string, version: bigint, lastUpdated: bigint>, "
    "metaData struct<configuration: map<string, string>>"
)
_INTERVAL_MS = {
    "week": 7 * 86_400_000,
    "day": 86_400_000,
    "hour": 3_600_000,
    "minute": 60_000,
    "second": 1_000,
    "millisecond": 1,
    "microsecond": 0.001,
}


def newest_txn(
    spark: SparkSession, path: str, app_id: str, head: int
) -> tuple[int, int | None, dict[str, str]] | None:
    """``(version, lastUpdated, table configuration)`` of ``app_id``'s txn as of version
    ``head``, replaying the log as delta-spark does: the newest txn and metaData win."""
    from pyspark.sql import functions as F

    checkpoint, commits = _log_segment(spark, path, head)
    log = posixpath.join(path, "_delta_log")
    parts = []
    if checkpoint:
        version, files = checkpoint
        reader = spark.read.schema(_TXN_ACTIONS)
        paths = [posixpath.join(log, name) for name in files]
        read = reader.json(paths) if files[0].endswith(".json") else reader.parquet(*paths)
        parts.append(read.withColumn("commit", F.lit(version).cast("long")))
    if commits:
        read = spark.read.schema(_TXN_ACTIONS).json([posixpath.join(log, name) for name in commits])
        parts.append(
            read.withColumn("commit", F.regexp_extract("_metadata.file_path", r"(\d{20})\.json$", 1))
        )
    rows = (
        reduce(lambda a, b: a.unionByName(b), parts)
        .where((F.col("txn.appId") == F.lit(app_id)) | F.col("metaData").isNotNull())
        .select(
            F.col("commit").cast("long").alias("commit"),
            "txn.version",
            "txn.lastUpdated",
            F.col("metaData").isNotNull().alias("is_metadata"),
            "metaData.configuration",
        )
        .collect()
    )
    txns = [r for r in rows if not r["is_metadata"]]
    if not txns:
        return None
    txn = max(txns, key=lambda r: r["commit"])
    metadata = max((r for r in rows if r["is_metadata"]), key=lambda r: r["commit"], default=None)
    configuration = (metadata["configuration"] if metadata else None) or {}
    return int(txn["version"]), txn["lastUpdated"], configuration


def _log_segment(spark: SparkSession, path: str, head: int) -> tuple[tuple[int, list[str]] | None, list[str]]:
    """``((version, files) of the newest complete checkpoint or None, commit files after it up to
    version ``head``)``: names in ``_delta_log``, found through Hadoop's FileSystem (Spark's).

    Only the checkpoint that ``_last_checkpoint`` points to is listed: a long log has
    thousands of files, and py4j fetches their names one call at a time.
    """
    jvm = spark.sparkContext._jvm
    log = jvm.org.apache.hadoop.fs.Path(posixpath.join(path, "_delta_log"))
    fs = log.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    hint = _last_checkpoint(jvm, fs, log)
    checkpoint = None
    if hint is not None:
        found = fs.globStatus(jvm.org.apache.hadoop.fs.Path(log, f"{hint:020d}.checkpoint*"))
        checkpoint = _newest_checkpoint([s.getPath().getName() for s in found or []])
    if checkpoint is None:  # no hint (a young log), or a stale one: list it all
        checkpoint = _newest_checkpoint([s.getPath().getName() for s in fs.listStatus(log)])
    after = checkpoint[0] if checkpoint else -1
    return checkpoint, [f"{version:020d}.json" for version in range(after + 1, head + 1)]


def _last_checkpoint(jvm: Any, fs: Any, log: Any) -> int | None:
    """The version ``_delta_log/_last_checkpoint`` names, or None (absent or being replaced)."""
    from py4j.protocol import Py4JJavaError

    try:
        stream = fs.open(jvm.org.apache.hadoop.fs.Path(log, "_last_checkpoint"))
        try:
            text = jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
        finally:
            stream.close()
        return int(json.loads(text)["version"])
    except (Py4JJavaError, ValueError, KeyError, TypeError):  # no checkpoint yet, or mid-rewrite
        return None


def _newest_checkpoint(names: Sequence[str]) -> tuple[int, list[str]] | None:
    """The newest checkpoint all of whose parts are there: a single-file one (classic or V2),
    else the parts of a multi-part one."""
    found: dict[int, dict[int, set[str]]] = {}  # version -> parts in all (1: single) -> names
    for name in names:
        match = _CHECKPOINT_FILE.match(name)
        if match:
            total = int(match.group(3) or 1)
            found.setdefault(int(match.group(1)), {}).setdefault(total, set()).add(name)
    for version in sorted(found, reverse=True):
        for total, files in sorted(found[version].items()):
            if len(files) >= total:  # single-file ones (classic and V2) are each complete
                return version, sorted(files)[:total]
    return None


def interval_ms(path: str, text: str) -> float:
    """A Delta interval property (``'2 weeks'``, ``'interval 7 days'``) in milliseconds,
    as delta-spark reads it (months and years are refused there)."""
    cleaned = text.strip().lower().removeprefix("interval").strip()
    pairs = re.findall(r"(-?\d+(?:\.\d+)?)\s*([a-z]+?)s?\b", cleaned)
    leftover = re.sub(r"-?\d+(?:\.\d+)?\s*[a-z]+", "", cleaned).strip()
    if not pairs or leftover or any(unit not in _INTERVAL_MS for _, unit in pairs):
        raise MedallionError(
            f"{path}: {TXN_RETENTION_PROPERTY}={text!r} is not an interval such as '2 weeks'"
        )
    return sum(float(amount) * _INTERVAL_MS[unit] for amount, unit in pairs)
