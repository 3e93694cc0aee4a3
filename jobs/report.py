"""spark-submit entry point: `medallion report` with the same options.

    spark-submit jobs/report.py --env local [--set key=value ...] [--output DIR]

Writes reports/run-<timestamp>.html under the storage root (or --output).
"""

import sys

from medallion.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
