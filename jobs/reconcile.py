"""spark-submit entry point: `medallion reconcile` with the same options.

    spark-submit jobs/reconcile.py --env local [--set key=value ...] [options of `medallion reconcile --help`]

Under spark-submit the master, memory, confs and jars are spark-submit's; medallion's
settings fill in only the confs it left unset.
"""

import sys

from medallion.cli import main

if __name__ == "__main__":
    sys.exit(main(["reconcile", *sys.argv[1:]]))
