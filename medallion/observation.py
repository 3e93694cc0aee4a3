"""Figures Spark computes while an action runs anyway: an ``Observation`` read without blocking forever.

Usage::

    from pyspark.sql import Observation
    from medallion.observation import observed

    counted = Observation()
    table.append(rows.observe(counted, F.count("*").alias("rows")))
    seen = observed(counted)             # {"rows": ...}, or None if no action reported it
    rows = seen["rows"] if seen else table.read().count()
"""

from __future__ import annotations

import time

from pyspark.sql import Observation


def observed(observation: Observation, wait_s: float = 5.0) -> dict[str, object] | None:
    """The observation's metrics once an action has reported them; None if none did in ``wait_s``.

    Spark reports them through its listener bus, just after the action returns. An engine
    that plans a write or merge from the frame without one action reading it through may
    never report, and ``Observation.get`` would then wait forever: callers fall back to a
    job of their own.
    """
    reported = observation._jo.future()  # pyspark has no non-blocking accessor
    deadline = time.monotonic() + wait_s
    while not reported.isCompleted():
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)
    return observation.get
