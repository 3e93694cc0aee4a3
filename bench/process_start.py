"""A fresh Spark process's cost with and without the class archive `make setup` dumps.

Runs the same command (``medallion ingest`` of one small landed day on delta-spark, a new
lakehouse each time) in fresh processes, alternating ``MEDALLION_CLASS_ARCHIVE=off`` and the
archive, and compares the medians of wall time and of the CPU time the machine spent (read
from /proc/stat, so the driver JVM, which the CLI does not wait for, is counted too: run it
on an otherwise idle machine). Ends with one JSON line per metric, archive / without::

    .venv/bin/python bench/process_start.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._lib.common import REPO, settings_for


def machine_cpu_seconds() -> float:
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:]
    user, nice, system = (int(v) for v in fields[:3])
    return (user + nice + system) / os.sysconf("SC_CLK_TCK")


def one_run(landing: Path, scratch: Path, archive: bool) -> tuple[float, float]:
    root = Path(tempfile.mkdtemp(dir=scratch))
    shutil.copytree(landing, root / "landing")
    env = {**os.environ, "MEDALLION_CLASS_ARCHIVE": "on" if archive else "off"}
    command = [sys.executable, "-m", "medallion.cli", "--set", f"storage.root={root}",
               "--set", "delta.engine=spark", "ingest"]  # fmt: skip
    cpu, wall = machine_cpu_seconds(), time.perf_counter()
    subprocess.run(command, env=env, cwd=REPO, check=True, capture_output=True, timeout=600)
    wall, cpu = time.perf_counter() - wall, machine_cpu_seconds() - cpu
    shutil.rmtree(root, ignore_errors=True)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each kind")
    args = parser.parse_args()

    from medallion import class_archive
    from medallion.datagen import generate_history

    print(f"== class archive: {class_archive.dump()}", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="medallion-bench-start-"))
    try:
        seed = settings_for(scratch / "seed")
        generate_history(seed, days=1, events_per_day=2000, progress=False)
        landing = seed.storage.root_path / "landing"
        figures: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        one_run(landing, scratch, True)  # the page cache holds the jars and the archive for both
        for i in range(args.runs):
            for archive in (False, True):
                wall, cpu = one_run(landing, scratch, archive)
                figures[archive].append((wall, cpu))
                label = "archive" if archive else "without"
                print(f"  run {i + 1}/{args.runs} {label}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
        for index, metric in enumerate(("wall", "cpu")):
            with_archive = statistics.median(run[index] for run in figures[True])
            without = statistics.median(run[index] for run in figures[False])
            ratio = with_archive / without
            print(
                json.dumps(
                    {
                        "bench": "process_start",
                        "metric": f"fresh medallion ingest {metric} s, archive/without",
                        "ratio": round(ratio, 3),
                        "target": "<= 0.9",
                        "ok": ratio <= 0.9,
                        "archive_s": round(with_archive, 2),
                        "without_s": round(without, 2),
                    }
                ),
                flush=True,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
