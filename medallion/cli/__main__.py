"""``python -m medallion.cli``: the same as the ``medallion`` command."""

import sys

from medallion.cli.app import main

sys.exit(main())
