"""The errors a user can cause, and nothing else.

Every subclass of :class:`MedallionError` carries a message that fits on one line and says
what to change. The CLI and the jobs print ``error: <message>`` and exit with
:attr:`MedallionError.exit_code`; anything that is not a ``MedallionError`` is a bug and
keeps its traceback. :func:`one_line` gives any error's first line, for messages built from
errors a library raised.
"""

from __future__ import annotations


class MedallionError(Exception):
    """Base class: a problem the user can fix (conf, paths, models, environment)."""

    exit_code = 2


class ConfigError(MedallionError):
    """Invalid or unknown configuration."""


class EnvironmentProblem(MedallionError):
    """Something the machine lacks (Java, a jar, a package)."""


class TableNotFoundError(MedallionError):
    """A Delta table that should exist does not."""


class SchemaMismatchError(MedallionError):
    """A write whose schema differs from the table's."""


class ConcurrentWriteError(MedallionError):
    """A conflicting concurrent commit that retries could not resolve."""


class ModelNotReadyError(MedallionError):
    """A registered model, alias or signature that scoring cannot use."""


class StreamConfigError(MedallionError):
    """A streaming trigger, source or sink combination Spark would reject."""


def one_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its class name if it has none), for one-line errors."""
    try:
        text = str(exc).strip().splitlines()
    except Exception:  # pyspark's errors need the JVM to print, and it may have exited
        return "(no message once the JVM exited)"
    return text[0] if text else type(exc).__name__
