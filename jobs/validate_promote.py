"""spark-submit entry point: `medallion model validate --promote`.

    spark-submit jobs/validate_promote.py --env local [--set key=value ...]

Gates the challenger on the training set's held-out days and promotes it when it passes. A
challenger that fails leaves the champion serving, says so and exits 0, so the night goes on
scoring with the champion; with no champion at all it ends in one line, exit 2.
"""

import sys

from medallion.cli import main

if __name__ == "__main__":
    sys.exit(main(["model", "validate", "--promote", *sys.argv[1:]]))
