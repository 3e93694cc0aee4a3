"""Failpoints: named places where the fault-injection tests kill a real run.

Usage::

    MEDALLION_KILL_AT=ingest.bronze medallion ingest --mode batch   # SIGKILLed once bronze committed

Production code marks the points that matter for recovery (between two commits) with
:func:`reached`; unless ``MEDALLION_KILL_AT`` names that point, it does nothing. A SIGKILL,
not an exception: no ``finally`` block, no cleanup, nothing flushed, as when the operating
system or a cluster manager kills the process.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "MEDALLION_KILL_AT"


def reached(point: str) -> None:
    """SIGKILL this process if ``$MEDALLION_KILL_AT`` names ``point``."""
    if os.environ.get(VARIABLE) == point:
        os.kill(os.getpid(), signal.SIGKILL)
