"""spark-submit entry point: `medallion train` (train, register, point `challenger` at it).

spark-submit jobs/train.py --env local [--set key=value ...]
"""

import sys

from medallion.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
