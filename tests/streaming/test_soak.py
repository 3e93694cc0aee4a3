"""The soak, short: a stream killed with SIGKILL again and again beside the night and reconcile
loses and doubles nothing (bench/soak.py; the README reports a long run)."""

from __future__ import annotations

import os

import pytest

from bench.soak import Soak


@pytest.mark.heavy
def test_a_stream_killed_again_and_again_beside_the_night_loses_and_doubles_nothing(
    spark, lake_with_champion
):
    settings = lake_with_champion()
    # A minute and a quarter holds a few kills, a night and reconciles beside each other (the
    # drain adds a night and a reconcile); the README's soak (bench/soak.py) runs for half an
    # hour.
    minutes = float(os.environ.get("MEDALLION_SOAK_MINUTES", "1.25"))
    soak = Soak(
        settings, minutes, rate=10, kill_every=(10, 25), night_every=35, reconcile_every=30, log=print
    )
    soak.run()
    result = soak.check(spark)
    assert result.kills >= 2 and result.nights >= 2, result.line()
    assert result.events > 0
    assert result.ok, result.line()
