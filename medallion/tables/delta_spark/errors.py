"""delta-spark's errors as the table layer's: one-line MedallionErrors, and commit conflicts
the retry loop knows.

Usage::

    from medallion.tables.delta_spark.errors import CommitConflict, conflicts, translated

    with conflicts(), translated(path):      # ConcurrentAppendException -> CommitConflict,
        writer.save(path)                    # DELTA_MISSING_DELTA_TABLE -> TableNotFoundError

Messages are worded as the embedded engine words them, so a caller sees one message
whichever engine ran.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from medallion.errors import MedallionError, SchemaMismatchError, TableNotFoundError, one_line


class CommitConflict(Exception):
    """A concurrent commit won (delta-spark's conflict classes share no base class but
    PySparkException): :meth:`Table._retrying` retries on it."""


@contextmanager
def translated(path: str) -> Iterator[None]:
    """Spark/Delta errors a user can cause, as one-line MedallionErrors naming the table."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import AnalysisException
    from pyspark.errors.exceptions.captured import CapturedException

    try:
        yield
    except AnalysisException as exc:
        text = str(exc)
        if "DELTA_MISSING_DELTA_TABLE" in text or "is not a Delta table" in text or "PATH_NOT_FOUND" in text:
            raise TableNotFoundError(f"no Delta table at {path}: {one_line(exc)}") from None
        if "DELTA_REPLACE_WHERE_MISMATCH" in text or "does not conform" in text:
            raise MedallionError(
                f"overwrite of {path}: some rows do not match the predicate: {one_line(exc)}"
            ) from None
        if (
            "DELTA_FAILED_TO_MERGE_FIELDS" in text
            or "DELTA_SCHEMA" in text
            or "schema mismatch" in text.lower()
        ):
            raise SchemaMismatchError(f"schema mismatch writing {path}: {one_line(exc)}") from None
        if "DELTA_TIMESTAMP_EARLIER_THAN_COMMIT_RETENTION" in text:
            # Worded as the embedded engine words it: one message whichever engine reads.
            raise MedallionError(
                f"{path} has no version at or before that timestamp: {one_line(exc)}"
            ) from None
        if "DELTA_VERSION" in text or "DELTA_TIMESTAMP" in text:
            raise MedallionError(f"time travel on {path}: {one_line(exc)}") from None
        raise
    except (CapturedException, Py4JJavaError) as exc:
        # A constraint is checked as the write job runs: delta-spark's error reaches Python
        # as the JVM exception itself (pyspark converts only Spark's own classes).
        refused = _constraint_violation(path, _messages(exc))
        if refused is None:
            raise
        raise refused from None


def _messages(exc: BaseException) -> str:
    """The messages of a JVM error and of its causes, without the stack traces."""
    from py4j.protocol import Py4JJavaError

    if not isinstance(exc, Py4JJavaError):
        return str(exc)
    messages, cause = [], exc.java_exception
    while cause is not None and len(messages) < 10:
        messages.append(str(cause.getMessage()))
        cause = cause.getCause()
    return "\n".join(messages)


def _constraint_violation(path: str, text: str) -> MedallionError | None:
    """The one-line error for rows a NOT NULL or CHECK constraint refuses, else None."""
    columns = re.findall(r"NOT NULL constraint violated for column: (.+?)\.?$", text, flags=re.MULTILINE)
    if "DELTA_NOT_NULL_CONSTRAINT_VIOLATED" in text and columns:
        # Worded as the embedded engine words it (which counts the nulls, too).
        found = ", ".join(dict.fromkeys(columns))
        return SchemaMismatchError(
            f"NOT NULL column(s) of {path} would get nulls: {found}; fill or filter them"
        )
    if "DELTA_VIOLATE_CONSTRAINT_WITH_VALUES" in text:
        return MedallionError(f"a CHECK constraint of {path} refuses rows: {text.strip().splitlines()[0]}")
    return None


def _conflict_classes() -> tuple[type[BaseException], ...]:
    """delta-spark's concurrent-modification exceptions: another commit won the version."""
    from delta import exceptions as delta

    return (
        delta.ConcurrentAppendException,
        delta.ConcurrentDeleteDeleteException,
        delta.ConcurrentDeleteReadException,
        delta.ConcurrentTransactionException,
        delta.ConcurrentWriteException,
        delta.DeltaConcurrentModificationException,
        delta.MetadataChangedException,
        delta.ProtocolChangedException,
    )


@contextmanager
def conflicts() -> Iterator[None]:
    """delta-spark's commit conflicts as :class:`CommitConflict`, which writes retry on."""
    try:
        yield
    except _conflict_classes() as exc:
        raise CommitConflict(one_line(exc)) from exc
