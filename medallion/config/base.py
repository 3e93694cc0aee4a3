"""What every settings section shares: strict fields, and names that become path segments."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from medallion.errors import ConfigError

DEFAULT_ENV = "local"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def path_segment(value: str, what: str) -> str:
    """A name that becomes one path segment: no separators, no ``..``."""
    if not _SAFE_NAME.match(value) or ".." in value:
        raise ConfigError(f"{what} {value!r} must be letters, digits, '_', '-' or '.' (one path segment)")
    return value
