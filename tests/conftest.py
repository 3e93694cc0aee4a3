"""Shared fixtures: one SparkSession per test session, a fresh storage root per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PYARROW_IGNORE_TIMEZONE", "1")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def spark():
    """A real local SparkSession (local[2]) shared by every test of the run."""
    from medallion.config import load_settings
    from medallion.spark import get_spark

    settings = load_settings(env="local", environ={}, directory=REPO / "conf")
    session = get_spark(settings)
    yield session
    session.stop()


@pytest.fixture
def storage_root(tmp_path: Path) -> Path:
    root = tmp_path / "lakehouse"
    root.mkdir()
    return root


@pytest.fixture
def settings(storage_root: Path):
    """Settings for the local env, rooted in this test's tmp dir, ignoring the caller's env vars."""
    from medallion.config import load_settings

    return load_settings(
        env="local",
        environ={},
        directory=REPO / "conf",
        overrides=[f"storage.root={storage_root}"],
    )
