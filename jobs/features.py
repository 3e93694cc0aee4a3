"""spark-submit entry point: `medallion features` with the same options.

    spark-submit jobs/features.py --env local [--set key=value ...] [options of `medallion features --help`]

Yesterday's card profiles and features, then the training set; `--catch-up` also builds every
earlier day silver holds and gold lacks (what a first night on a fresh lakehouse needs).
"""

import sys

from medallion.cli import main

if __name__ == "__main__":
    sys.exit(main(["features", *sys.argv[1:]]))
