"""spark-submit entry point: `medallion stream` with the same options.

    spark-submit jobs/stream_score.py --env local [--set key=value ...] [options of `medallion stream --help`]

Under spark-submit the session (master, confs, jars) belongs to spark-submit; medallion
uses it as is.
"""

import sys

from medallion.cli import main

if __name__ == "__main__":
    sys.exit(main(["stream", *sys.argv[1:]]))
