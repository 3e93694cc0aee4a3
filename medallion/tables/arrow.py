"""Table rows and file statistics as Arrow on the driver, with no Spark job to make them.

Usage::

    from medallion.tables.arrow import driver_rows, may_match, may_overlap

    audit.append(driver_rows(AUDIT_SCHEMA, [{"event_date": day, "rows": 7}]))
    stats = bronze.file_statistics(["source_file"])
    may_match(stats, "source_file", batch_files).any()      # False: no file holds them

Timestamps are UTC instants, as Spark stores them, so a batch built here appends unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from pyspark.sql.types import StructType


def arrow_schema(schema: StructType) -> pa.Schema:
    """``schema`` in Arrow, timestamps as UTC instants (as Spark stores them)."""
    import inspect

    from pyspark.sql.pandas.types import to_arrow_schema

    # pyspark 4.2 names the time zone; 4.0 and 4.1 (a cluster's own) take a flag.
    if "timezone" in inspect.signature(to_arrow_schema).parameters:
        return to_arrow_schema(schema, timezone="UTC")
    return to_arrow_schema(schema, timestamp_utc=True)


def driver_rows(schema: StructType, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """A few rows built on the driver as Arrow in ``schema``, ready for :meth:`Table.append`
    or :meth:`Table.merge`: no Spark job to make them (``createDataFrame`` runs one)::

        audit.append(driver_rows(AUDIT_SCHEMA, [{"event_date": day, "rows": 7}]))
    """
    import pyarrow as pa

    names = schema.fieldNames()
    return pa.Table.from_pylist(
        [{name: row[name] for name in names} for row in rows], schema=arrow_schema(schema)
    )


def may_match(stats: pa.Table, column: str, values: Sequence[Any]) -> np.ndarray:
    """Per file of :meth:`Table.file_statistics`: whether its bounds of ``column`` may enclose one of
    ``values`` (False: the file holds none of them). A file without both bounds (a long string's
    max is left out) may hold anything; a truncated bound still bounds (delta-rs rounds a max up)::

        stats = bronze.file_statistics(["source_file"])
        if may_match(stats, "source_file", batch_files).any():
            ...  # look the files up with Spark
    """
    import numpy as np

    found = np.zeros(stats.num_rows, dtype=bool)
    for value in set(values):
        found |= may_overlap(stats, column, value, value)
    return found


def may_overlap(stats: pa.Table, column: str, low: Any, high: Any) -> np.ndarray:
    """Per file of :meth:`Table.file_statistics`: whether its bounds of ``column`` may meet the
    range [``low``, ``high``] (False: the file holds no value in it). A file without both bounds
    may hold anything::

        stats = silver.file_statistics(["event_id"])
        may_overlap(stats, "event_id", "evt-0100", "evt-0200")    # array([False, True, True])
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    lower, upper = stats.column(f"min.{column}"), stats.column(f"max.{column}")
    if pa.types.is_null(lower.type) or pa.types.is_null(upper.type):
        return np.ones(stats.num_rows, dtype=bool)
    meets = pc.and_(
        pc.less_equal(lower, pa.scalar(high, lower.type)), pc.greater_equal(upper, pa.scalar(low, upper.type))
    )
    return pc.fill_null(meets, True).to_numpy(zero_copy_only=False)
