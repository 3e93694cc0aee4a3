"""A table's txns read from its ``_delta_log`` as the Delta protocol defines them.

delta-spark has no public API for a table's txns, and its DeltaLog class has another package
on Databricks, so the log is replayed here: the newest complete checkpoint (read by Spark),
then the commits after it (read as text through Hadoop's FileSystem, Spark's own). A
table's txns are kept per process and brought forward commit by commit: a txn-keyed write
checks its txn before every commit, and replaying the log each time would cost a Spark job
per micro-batch and table.

Usage::

    from medallion.tables.delta_spark.log import interval_ms, newest_txn

    newest_txn(spark, "/lake/tables/silver/events", "ingest:events")
    # (7, 1763625600000, {"delta.setTransactionRetentionDuration": "2 weeks"}) or None
    interval_ms(path, "2 weeks")             # how long delta-spark keeps a txn: 1209600000.0
"""

from __future__ import annotations

import json
import posixpath
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from medallion.errors import MedallionError, TableNotFoundError

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


@dataclass
class TableTxns:
    """A table's txns and configuration as of commit ``head`` (whose file is ``head_stamp``:
    its modification time, so a table replaced at the same path is not mistaken for this one)."""

    head: int
    head_stamp: int
    txns: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # appId -> (version, lastUpdated)
    configuration: dict[str, str] = field(default_factory=dict)

    def apply(self, actions: Iterator[dict[str, Any]]) -> None:
        """Replay one commit's (or checkpoint's) actions: the newest txn and metaData win."""
        for action in actions:
            txn = action.get("txn")
            if txn:
                self.txns[txn["appId"]] = (int(txn["version"]), txn.get("lastUpdated"))
            metadata = action.get("metaData")
            if metadata is not None:
                self.configuration = dict(metadata.get("configuration") or {})

    def brought_forward(self, log: _DeltaLogFiles) -> TableTxns:
        """Itself with every commit after ``head`` replayed."""
        while (stamp := log.stamp(self.head + 1)) is not None:
            self.apply(log.commit_actions(self.head + 1))
            self.head, self.head_stamp = self.head + 1, stamp
        return self


_KNOWN: dict[str, TableTxns] = {}
_KNOWN_LOCK = threading.Lock()


def newest_txn(spark: SparkSession, path: str, app_id: str) -> tuple[int, int | None, dict[str, str]] | None:
    """``(version, lastUpdated, table configuration)`` of ``app_id``'s txn as of the table's
    newest commit, replaying the log as delta-spark does: the newest txn and metaData win."""
    log = _DeltaLogFiles(spark, path)
    with _KNOWN_LOCK:
        known = _KNOWN.get(path)
    txns = _brought_forward(log, known) if known is not None else None
    if txns is None:
        txns = _replayed(spark, log)
    with _KNOWN_LOCK:
        current = _KNOWN.get(path)
        if current is None or current.head <= txns.head:
            _KNOWN[path] = txns
    found = txns.txns.get(app_id)
    if found is None:
        return None
    return found[0], found[1], txns.configuration


def _brought_forward(log: _DeltaLogFiles, known: TableTxns) -> TableTxns | None:
    """``known`` with the commits after its head, or None if its head is not this table's."""
    if log.stamp(known.head) != known.head_stamp:
        return None
    return TableTxns(
        known.head, known.head_stamp, dict(known.txns), dict(known.configuration)
    ).brought_forward(log)


def _replayed(spark: SparkSession, log: _DeltaLogFiles) -> TableTxns:
    """The txns from the newest complete checkpoint, then every commit after it."""
    checkpoint = log.newest_checkpoint()
    txns = TableTxns(-1, 0)
    if checkpoint is not None:
        version, files = checkpoint
        reader = spark.read.schema(_TXN_ACTIONS)
        paths = [posixpath.join(log.path, name) for name in files]
        read = reader.json(paths) if files[0].endswith(".json") else reader.parquet(*paths)
        rows = read.where("txn IS NOT NULL OR metaData IS NOT NULL").collect()
        txns.apply(row.asDict(recursive=True) for row in rows)
        txns.head, txns.head_stamp = version, log.stamp(version) or 0
    txns.brought_forward(log)
    if txns.head < 0:
        raise TableNotFoundError(
            f"no Delta table at {posixpath.dirname(log.path)}: no _delta_log with a commit there"
        )
    return txns


class _DeltaLogFiles:
    """A table's ``_delta_log`` through Hadoop's FileSystem: any store Spark reaches."""

    def __init__(self, spark: SparkSession, table_path: str) -> None:
        self._jvm = spark.sparkContext._jvm
        self.path = posixpath.join(table_path, "_delta_log")
        self._log = self._jvm.org.apache.hadoop.fs.Path(self.path)
        self._fs = self._log.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())

    def _file(self, name: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(self._log, name)

    def stamp(self, version: int) -> int | None:
        """The modification time of commit ``version``'s file, or None if it does not exist
        (a commit's file appears whole: Delta writes it by an atomic put or rename)."""
        from py4j.protocol import Py4JJavaError

        try:
            return int(self._fs.getFileStatus(self._file(f"{version:020d}.json")).getModificationTime())
        except Py4JJavaError:  # FileNotFoundException
            return None

    def commit_actions(self, version: int) -> Iterator[dict[str, Any]]:
        """The txn and metaData actions of commit ``version`` (the add/remove lines, most of a
        commit, are skipped unparsed)."""
        stream = self._fs.open(self._file(f"{version:020d}.json"))
        try:
            text = self._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
        finally:
            stream.close()
        for line in text.splitlines():
            key = line[:16]  # each action is one object of one key: the line's first word
            if '"txn"' in key or '"metaData"' in key:
                yield json.loads(line)

    def newest_checkpoint(self) -> tuple[int, list[str]] | None:
        """``(version, file names)`` of the newest complete checkpoint, or None.

        Only the checkpoint that ``_last_checkpoint`` points to is listed: a long log has
        thousands of files, and py4j fetches their names one call at a time.
        """
        hint = _last_checkpoint(self._jvm, self._fs, self._log)
        checkpoint = None
        if hint is not None:
            found = self._fs.globStatus(self._file(f"{hint:020d}.checkpoint*"))
            checkpoint = _newest_checkpoint([s.getPath().getName() for s in found or []])
        if checkpoint is None:  # no hint (a young log), or a stale one: list it all
            checkpoint = _newest_checkpoint([s.getPath().getName() for s in self._fs.listStatus(self._log)])
        return checkpoint


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
