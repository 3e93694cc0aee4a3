"""A pyspark Python data source named ``delta`` over delta-rs, for the ``rs`` engine.

It lets code written for delta-spark read unchanged where delta-spark's jars are absent::

    from medallion.tables.delta_rs.datasource import register

    register(spark)
    spark.read.format("delta").load("/lake/tables/silver/events")
    spark.read.format("delta").option("versionAsOf", 3).load(path)
    (spark.readStream.format("delta")
         .option("startingVersion", 4).option("maxFilesPerTrigger", 10)
         .load(path))

The stream emits the rows each new version appends. Versions that remove data (overwrite,
merge, delete) or rewrite it without data change (optimize) are skipped, as Delta's
``skipChangeCommits`` does. Files are read by pyarrow inside Spark's Python workers.

Limit of pyspark 4.0: a Python stream reader is not told its start offset (no admission
control), so ``maxFilesPerTrigger`` holds from the second micro-batch of each run on; the
first one catches up on everything available when the query (re)starts, and an
``availableNow`` trigger reads all in one batch. Nothing is lost or read twice either way:
offsets are checkpointed by Spark.

Tables the embedded engine would misread (deletion vectors in use, column mapping) fail the
read: see :func:`medallion.tables.delta_rs.log.refuse_unreadable`.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from typing import Any

from pyspark.sql.datasource import DataSource, DataSourceReader, DataSourceStreamReader, InputPartition
from pyspark.sql.types import StructType

from medallion.tables.arrow import arrow_schema
from medallion.tables.checks import as_utc, normalize_path
from medallion.tables.delta_rs.log import filesystem, refuse_unreadable, tail

NAME = "delta"
# Where delta-spark's jars are loaded, ``delta`` is theirs: the embedded source takes this name.
NAME_BESIDE_DELTA_SPARK = "delta_rs"


def register(spark) -> str:
    """Register the data source with ``spark`` (idempotent); returns its format name:
    ``delta``, or ``delta_rs`` in a session where delta-spark already provides ``delta``."""
    registered = getattr(spark, "_medallion_delta_source", None)
    if registered:
        return registered
    from medallion.spark import DELTA_TABLE_CLASS, jvm_class_available

    if jvm_class_available(spark, DELTA_TABLE_CLASS):
        spark.dataSource.register(DeltaRsDataSource)
        name = NAME_BESIDE_DELTA_SPARK
    else:
        spark.dataSource.register(DeltaDataSource)
        name = NAME
    spark._medallion_delta_source = name
    return name


class FilePartition(InputPartition):
    """One data file to read, with its partition values as the log records them (strings)."""

    def __init__(self, path: str, partition_values: dict[str, str | None]) -> None:
        super().__init__(path)
        self.path = path
        self.partition_values = partition_values


class DeltaDataSource(DataSource):
    """``format("delta")`` for batch and streaming reads on the embedded engine."""

    @classmethod
    def name(cls) -> str:
        return NAME

    def _path(self) -> str:
        path = self.options.get("path")
        if not path:
            raise ValueError("format('delta') needs a path: .load('<table path>')")
        return normalize_path(path)

    def schema(self) -> StructType:
        from deltalake import DeltaTable

        return StructType.fromJson(json.loads(DeltaTable(self._path()).schema().to_json()))

    def reader(self, schema: StructType) -> DataSourceReader:
        version = self.options.get("versionAsOf")
        timestamp = self.options.get("timestampAsOf")
        return DeltaBatchReader(self._path(), schema, version, timestamp)

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        start = self.options.get("startingVersion")
        limit = self.options.get("maxFilesPerTrigger")
        return DeltaStreamReader(
            self._path(),
            schema,
            None if start in (None, "latest") else int(start),
            start == "latest",
            int(limit) if limit else None,
        )


class DeltaBatchReader(DataSourceReader):
    def __init__(self, path: str, schema: StructType, version: str | None, timestamp: str | None) -> None:
        self.path = path
        self.schema = schema
        self.version = int(version) if version is not None else None
        self.timestamp = timestamp

    def partitions(self) -> list[FilePartition]:
        from deltalake import DeltaTable

        dt = DeltaTable(self.path, version=self.version)
        if self.timestamp is not None:
            dt.load_as_version(as_utc(self.timestamp))
        refuse_unreadable(dt, self.path)
        return [FilePartition(path, values) for path, values in _snapshot_files(dt)]

    def read(self, partition: FilePartition | None) -> Iterator[Any]:
        # An empty table plans no partitions, and pyspark then reads one partition of None.
        if partition is not None:
            yield from read_file(self.path, partition, self.schema)


class DeltaStreamReader(DataSourceStreamReader):
    """Offsets are ``{"version": v, "index": i, "snapshot": bool}``: everything before file
    ``i`` of version ``v`` is consumed; ``snapshot`` marks the initial full snapshot."""

    def __init__(
        self, path: str, schema: StructType, start: int | None, latest: bool, limit: int | None
    ) -> None:
        self.path = path
        self.schema = schema
        self.start = start
        self.latest = latest
        self.limit = limit
        self._position: dict[str, Any] | None = None

    def initialOffset(self) -> dict[str, Any]:
        current = _latest_version(self.path)
        if self.latest:
            offset = {"version": current + 1, "index": 0, "snapshot": False}
        elif self.start is not None:
            offset = {"version": self.start, "index": 0, "snapshot": False}
        else:
            offset = {"version": current, "index": 0, "snapshot": True}
        self._position = offset
        return offset

    def latestOffset(self) -> dict[str, Any]:
        latest = _latest_version(self.path)
        position = self._position
        if position is None or self.limit is None:
            return {"version": latest + 1, "index": 0, "snapshot": False}
        budget = self.limit
        version, index, snapshot = position["version"], position["index"], position["snapshot"]
        while version <= latest:
            files = self._files(version, snapshot)
            remaining = len(files) - index
            if remaining > budget:
                return {"version": version, "index": index + budget, "snapshot": snapshot}
            budget -= remaining
            version, index, snapshot = version + 1, 0, False
            if budget == 0:
                break
        return {"version": version, "index": 0, "snapshot": False}

    def partitions(self, start: dict[str, Any], end: dict[str, Any]) -> list[FilePartition]:
        self._position = end
        parts: list[FilePartition] = []
        version, index, snapshot = start["version"], start["index"], start["snapshot"]
        while (version, index) < (end["version"], end["index"]):
            files = self._files(version, snapshot)
            stop = end["index"] if version == end["version"] else len(files)
            parts += [FilePartition(path, values) for path, values in files[index:stop]]
            version, index, snapshot = version + 1, 0, False
        return parts

    def read(self, partition: FilePartition) -> Iterator[Any]:
        yield from read_file(self.path, partition, self.schema)

    def commit(self, end: dict[str, Any]) -> None:
        self._position = end

    def _files(self, version: int, snapshot: bool) -> list[tuple[str, dict[str, str | None]]]:
        from deltalake import DeltaTable

        if snapshot:
            dt = DeltaTable(self.path, version=version)
            refuse_unreadable(dt, self.path)
            return _snapshot_files(dt)
        return _appended_files(self.path, version)


# --------------------------------------------------------------------------- log and files


def _latest_version(path: str) -> int:
    from deltalake import DeltaTable

    return DeltaTable(path).version()


def _appended_files(path: str, version: int) -> list[tuple[str, dict[str, str | None]]]:
    """Files version ``version`` adds, or none if it is not a pure append (skipChangeCommits)."""
    fs, root = filesystem(path)
    log = posixpath.join(root, "_delta_log", f"{version:020d}.json")
    try:
        with fs.open_input_stream(log) as stream:
            lines = stream.read().decode().splitlines()
    except FileNotFoundError:
        raise ValueError(
            f"version {version} of {path} is no longer in the Delta log (log retention); "
            "restart the stream with a newer checkpoint or startingVersion"
        ) from None
    actions = [json.loads(line) for line in lines if line.strip()]
    if any("metaData" in a or "protocol" in a for a in actions):
        # A version may turn on what this engine cannot read (column mapping, a feature).
        from deltalake import DeltaTable

        refuse_unreadable(DeltaTable(path, version=version), path)
    if any("remove" in a and a["remove"].get("dataChange", True) for a in actions):
        return []
    adds = [a["add"] for a in actions if "add" in a and a["add"].get("dataChange", True)]
    from urllib.parse import unquote

    return sorted(
        (posixpath.join(path, unquote(add["path"])), dict(add.get("partitionValues") or {})) for add in adds
    )


def _snapshot_files(dt) -> list[tuple[str, dict[str, str | None]]]:
    from urllib.parse import unquote

    import pyarrow as pa

    actions = pa.table(dt.get_add_actions(flatten=True))
    columns = [c for c in actions.column_names if c.startswith("partition.")]
    # Part file names repeat across partition directories: match on directories + name.
    depth = len(columns) + 1
    uris = {tail(unquote(u), depth): u for u in dt.file_uris()}
    files = []
    for row in actions.to_pylist():
        values = {c[len("partition.") :]: _as_string(row[c]) for c in columns}
        path = row["path"]
        files.append((uris.get(tail(unquote(path), depth), posixpath.join(dt.table_uri, path)), values))
    return sorted(files)


def _as_string(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "isoformat") and not hasattr(value, "hour"):
        return value.isoformat()
    if hasattr(value, "hour"):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return str(value)


def read_file(table_path: str, partition: FilePartition, schema: StructType) -> Iterator[Any]:
    """One data file as Arrow record batches in ``schema``'s column order and types."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = arrow_schema(schema)
    fs, _ = filesystem(table_path)
    location = partition.path
    if "://" in location and location.startswith("file:"):
        location = location.split("://", 1)[1]
    with fs.open_input_file(location) as handle:
        data = pq.read_table(handle)
    arrays = []
    for field in target:
        if field.name in partition.partition_values:
            raw = pa.array([partition.partition_values[field.name]] * data.num_rows, pa.string())
            arrays.append(raw.cast(field.type))
        elif field.name in data.column_names:
            arrays.append(data.column(field.name).cast(field.type))
        else:  # a column added after this file was written
            arrays.append(pa.nulls(data.num_rows, field.type))
    # In ``target``'s own schema, NOT NULL flags included: pyspark 4.2 compares the batches'
    # schema with the declared one field by field.
    table = pa.Table.from_arrays(arrays, schema=target)
    yield from table.to_batches(max_chunksize=10_000)


class DeltaRsDataSource(DeltaDataSource):
    """The same source under ``delta_rs``, for sessions where delta-spark owns ``delta``."""

    @classmethod
    def name(cls) -> str:
        return NAME_BESIDE_DELTA_SPARK
