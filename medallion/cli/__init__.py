"""The ``medallion`` command line (``medallion --help``); ``main`` is the console script.

Usage::

    from medallion.cli import main

    main(["batch", "--date", "2026-12-05"])   # the exit code
"""

from medallion.cli.app import app, main
from medallion.cli.common import console

__all__ = ["app", "console", "main"]
