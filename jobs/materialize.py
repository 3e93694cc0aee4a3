"""spark-submit entry point: `medallion serve materialize` with the same options.

    spark-submit jobs/materialize.py --env local [--set key=value ...]

Today's card profiles and the precomputed predictions into the online store, as one new
generation (readers switch to it whole), after the night's reconcile.
"""

import sys

from medallion.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", "materialize", *sys.argv[1:]]))
