"""The embedded engine's view of a Delta log, through delta-rs: what every reader needs.

Usage::

    from deltalake import DeltaTable

    from medallion.tables.delta_rs.log import refuse_unreadable, spark_schema, translated

    with translated(path):                   # TableNotFoundError naming the path, not delta-rs's
        dt = DeltaTable(path)
    refuse_unreadable(dt, path)              # deletion vectors in use, column mapping: refused
    spark_schema(dt), partition_columns(dt)  # StructType, ["event_date"]
    fs, root = filesystem(path)              # pyarrow's filesystem for the table's files

:class:`~medallion.tables.delta_rs.DeltaRsTable` and the ``delta`` data source
(:mod:`medallion.tables.delta_rs.datasource`) both read tables through these.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import unquote

from medallion.errors import MedallionError, SchemaMismatchError, TableNotFoundError, one_line

if TYPE_CHECKING:
    import pyarrow.fs as pafs
    from deltalake import DeltaTable
    from pyspark.sql.types import StructType


# --------------------------------------------------------------------------- delta-rs errors


@contextmanager
def translated(path: str) -> Iterator[None]:
    """delta-rs errors a user can cause, as one-line MedallionErrors naming the table."""
    from deltalake.exceptions import CommitFailedError
    from deltalake.exceptions import SchemaMismatchError as RsSchemaMismatch
    from deltalake.exceptions import TableNotFoundError as RsTableNotFound

    try:
        yield
    except RsTableNotFound as exc:
        raise TableNotFoundError(f"no Delta table at {path}: {one_line(exc)}") from None
    except RsSchemaMismatch as exc:
        raise SchemaMismatchError(f"schema mismatch writing {path}: {one_line(exc)}") from None
    except CommitFailedError:
        raise  # a conflict: the retry loop decides
    except FileNotFoundError as exc:
        raise TableNotFoundError(f"no Delta table at {path}: {one_line(exc)}") from None


# --------------------------------------------------------------------------- foreign tables

# Reader features this engine reads as delta-spark does: delta-rs replays the log (classic
# and v2 checkpoints) and Spark reads timestamp_ntz parquet columns as such. Deletion vectors
# and column mapping only where they change nothing: no file has a vector, the mode is none.
READABLE_FEATURES = frozenset({"timestampNtz", "v2Checkpoint", "deletionVectors", "columnMapping"})
# Verdict per (table, table id, version): a version's protocol, metadata and files never
# change, and looking for deletion vectors reads them. Forgotten wholesale when full.
_VERDICTS: dict[tuple[str, str, int], str | None] = {}
_MAX_VERDICTS = 4096


def refuse_unreadable(dt: DeltaTable, path: str) -> None:
    """Raise a one-line MedallionError if this engine would misread ``dt`` at its version."""
    key = (dt.table_uri, dt.metadata().id, dt.version())
    try:
        problem = _VERDICTS[key]
    except KeyError:
        if len(_VERDICTS) >= _MAX_VERDICTS:
            _VERDICTS.clear()
        problem = _VERDICTS[key] = _unreadable(dt)
    if problem:
        raise MedallionError(f"{path} (version {key[2]}) {problem}: set delta.engine=spark")


def _unreadable(dt: DeltaTable) -> str | None:
    """Why Spark, handed ``dt``'s data files and schema, would not read the table right."""
    import pyarrow as pa

    protocol = dt.protocol()
    if protocol.min_reader_version > 3:
        return (
            f"needs Delta reader version {protocol.min_reader_version}, which the embedded engine cannot read"
        )
    features = set(protocol.reader_features or ())
    unknown = sorted(features - READABLE_FEATURES)
    if unknown:
        return f"uses the reader feature(s) {', '.join(unknown)}, which the embedded engine cannot read"
    # Data files name their columns by physical names (col-<uuid>, or the names before a
    # rename): read by logical name, they come back as nulls. Reader version 2 is this.
    mode = dt.metadata().configuration.get("delta.columnMapping.mode", "none")
    if mode.lower() != "none":
        return f"uses column mapping (mode {mode}), which the embedded engine cannot read"
    if "deletionVectors" in features:
        # Spark would bring back the rows a vector marks deleted. delta-rs tells which files
        # have one only by materializing the vectors: once per version, as the verdict is kept.
        vectors = pa.RecordBatchReader.from_stream(dt.deletion_vectors())
        if any(batch.num_rows for batch in vectors):
            return "uses deletion vectors, which the embedded engine cannot apply"
    return None


# --------------------------------------------------------------------------- the table's metadata


def partition_columns(dt: DeltaTable) -> list[str]:
    """The table's partition columns, in order."""
    return list(dt.metadata().partition_columns)


def spark_schema(dt: DeltaTable) -> StructType:
    """The table's schema as Spark's ``StructType``."""
    from pyspark.sql.types import StructType

    return StructType.fromJson(json.loads(dt.schema().to_json()))


# --------------------------------------------------------------------------- where the files are


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's filesystem for ``path`` and the path within it (a URI loses its scheme)."""
    import pyarrow.fs as pafs

    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    return pafs.LocalFileSystem(), path


def plain(uri: str) -> str:
    """A file URI or path as a comparable local-or-remote path (no scheme noise, decoded)."""
    text = unquote(uri)
    if text.startswith("file:"):
        text = text[len("file:") :]
        while text.startswith("//"):
            text = text[1:]
    return text


def tail(path: str, segments: int) -> str:
    """The last ``segments`` parts of a path: a data file relative to its table."""
    return "/".join(path.rstrip("/").split("/")[-segments:])
