"""What both engines check and normalize the same way: paths, schemas, timestamps, errors.

Usage::

    from medallion.tables.checks import as_utc, check_same_schema, normalize_path

    normalize_path("~/lake/tables/silver/events")      # '/home/me/lake/tables/silver/events'
    check_same_schema(path, table.schema, df.schema)    # SchemaMismatchError naming each column
    as_utc("2026-11-20T08:00:00Z")                      # datetime(2026, 11, 20, 8, 0, tzinfo=UTC)

Engine-independent: nothing here opens a table, so every engine and the contract import it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from medallion.errors import MedallionError, SchemaMismatchError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql.types import StructType


def normalize_path(path: str) -> str:
    """A local path made absolute; URIs (s3://, abfss://, dbfs:/) kept as given."""
    import os

    if "://" in path or path.startswith("dbfs:"):
        return path.rstrip("/")
    if path.startswith("file:"):
        path = path[len("file:") :]
        while path.startswith("//"):
            path = path[1:]
    return os.path.abspath(os.path.expanduser(path))


def schema_differences(table: StructType, frame: StructType) -> tuple[list[str], list[str], list[str]]:
    """(missing from the frame, not in the table, different type) column descriptions.

    Nullability is not compared: Spark loses it through most transformations; NOT NULL is
    enforced on the written data instead.
    """
    theirs = {f.name: f for f in frame.fields}
    ours = {f.name: f for f in table.fields}
    missing = [name for name in ours if name not in theirs]
    extra = [name for name in theirs if name not in ours]
    changed = [
        f"{name} ({ours[name].dataType.simpleString()} in the table, {theirs[name].dataType.simpleString()} in the frame)"
        for name in ours
        if name in theirs and ours[name].dataType.simpleString() != theirs[name].dataType.simpleString()
    ]
    return missing, extra, changed


def check_same_schema(path: str, table: StructType, frame: StructType, what: str = "the frame") -> None:
    """Raise :class:`SchemaMismatchError` naming every column that differs."""
    missing, extra, changed = schema_differences(table, frame)
    if missing or extra or changed:
        raise SchemaMismatchError(describe_mismatch(path, missing, extra, changed, what))


def arrow_in_table_order(path: str, table: StructType, rows: pa.Table) -> pa.Table:
    """``rows`` with the table's columns in the table's order; a one-line error if they differ."""
    names = table.fieldNames()
    missing = [name for name in names if name not in rows.column_names]
    extra = [name for name in rows.column_names if name not in names]
    if missing or extra:
        raise SchemaMismatchError(describe_mismatch(path, missing, extra, [], "the Arrow rows"))
    return rows.select(names)


def describe_mismatch(path: str, missing: list[str], extra: list[str], changed: list[str], what: str) -> str:
    parts = []
    if missing:
        parts.append(f"missing in {what}: {', '.join(missing)}")
    if extra:
        parts.append(f"not in the table: {', '.join(extra)}")
    if changed:
        parts.append(f"type differs: {', '.join(changed)}")
    hint = "; select/cast the columns to the table schema" + (
        " or pass merge_schema=True to add new columns" if extra and not changed else ""
    )
    return f"schema of {what} does not match {path}: " + "; ".join(parts) + hint


def as_utc(timestamp: str | datetime) -> datetime:
    """An aware UTC datetime from an ISO string or datetime; naive means UTC."""
    if isinstance(timestamp, str):
        text = timestamp.strip().replace(" ", "T")
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            timestamp = datetime.fromisoformat(text)
        except ValueError:
            raise MedallionError(
                f"timestamp {timestamp!r} is not ISO 8601, e.g. '2026-11-20T08:00:00Z'"
            ) from None
    if timestamp.tzinfo is None:
        return timestamp.replace(tzinfo=UTC)
    return timestamp.astimezone(UTC)
