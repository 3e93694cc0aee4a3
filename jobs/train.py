"""spark-submit entry point: `medallion train` (train, register, point `challenger` at it).

    spark-submit jobs/train.py --env local [--set key=value ...]

Trains on gold.training_set (jobs/features.py refreshes it); jobs/validate_promote.py gates
the new challenger.
"""

import sys

from medallion.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
