"""The errors a user can cause, and nothing else.

Every subclass of :class:`MedallionError` carries a message that fits on one line and says
what to change. The CLI and the jobs print ``error: <message>`` and exit with
:attr:`MedallionError.exit_code`; anything that is not a ``MedallionError`` is a bug and
keeps its traceback.
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
