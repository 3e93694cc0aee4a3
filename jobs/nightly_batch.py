"""spark-submit entry point: `medallion batch` with the same options.

    spark-submit jobs/nightly_batch.py --env local [--set key=value ...] [options of `medallion batch --help`]

Under spark-submit the session (master, confs, jars) belongs to spark-submit; medallion
uses it as is.
"""

import sys

from medallion.cli import main

if __name__ == "__main__":
    sys.exit(main(["batch", *sys.argv[1:]]))
