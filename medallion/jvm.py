"""The JVM parts beside pyspark's own jars: delta-spark, Spark's Kafka connector, Kafka's broker,
and medallion's own scoring jar.

Usage::

    from medallion import jvm

    jvm.check_pair()                  # None, or why this pyspark and delta-spark do not go together
    jvm.fetch(["delta", "kafka"])     # resolve from Maven Central once, into the cache
    jvm.jars("delta")                 # the cached jars, [] if not fetched
    python -m medallion.jvm fetch     # what `make setup` runs; offline it says what is missing
    spark-submit --jars $(python -m medallion.jvm classpath) jobs/nightly_batch.py --set delta.engine=spark

Each bundle is resolved by Spark's own package resolution (``spark-submit --packages``,
Ivy) into ``$MEDALLION_JARS_DIR`` (default ``~/.cache/medallion/jars``), one folder per
pyspark version and bundle. Sessions then put the cached jars on ``spark.jars``: no
network when a job starts, and nothing is committed to the repository. Jars that pyspark
ships itself (Hadoop, Parquet, Jackson, ...) are left out of the Spark bundles, so a
session never has two versions of one library.

The scoring jar (``io.medallion.scoring``: the native scorer's tree walker, the continuous
trigger's profile lookup) is
built from the Java source shipped in the package, with ``javac`` against pyspark's jars, into
the same cache, named by a digest of its source: a changed source builds a new jar. Without a
JDK it is not built: native scoring runs its trees as SQL expressions, and the continuous
trigger looks profiles up in a pandas UDF.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# pyspark release -> the delta-spark release built for it (Python package and jar alike).
# Delta's compatibility matrix: delta-spark 4.4.x declares pyspark>=4.0.1,<=4.2.0, and its
# jar for Spark 4.2 is io.delta:delta-spark_4.2_2.13 (4.4.1 has no jar on Maven Central).
DELTA_FOR_SPARK = {"4.2.0": "4.4.0"}
KAFKA_BROKER_VERSION = "4.1.1"
SCALA = "2.13"


@dataclass(frozen=True)
class Bundle:
    """One set of Maven coordinates resolved together into one cache folder."""

    name: str
    coordinates: tuple[str, ...]
    marker_class: str  # a class the bundle must hold: checked before a session trusts the jars
    shares_spark_classpath: bool = True  # left out: what pyspark ships itself

    def describe(self) -> str:
        return ",".join(self.coordinates)


def spark_version() -> str:
    import pyspark

    return pyspark.__version__


def delta_version() -> str | None:
    try:
        return version("delta-spark")
    except PackageNotFoundError:
        return None


def bundles(spark: str | None = None) -> dict[str, Bundle]:
    spark = spark or spark_version()
    minor = ".".join(spark.split(".")[:2])
    delta = DELTA_FOR_SPARK.get(spark) or delta_version() or "unknown"
    return {
        "delta": Bundle(
            "delta", (f"io.delta:delta-spark_{minor}_{SCALA}:{delta}",), "io/delta/tables/DeltaTable.class"
        ),
        "kafka": Bundle(
            "kafka",
            (f"org.apache.spark:spark-sql-kafka-0-10_{SCALA}:{spark}",),
            "org/apache/spark/sql/kafka010/KafkaSourceProvider.class",
        ),
        "broker": Bundle(
            "broker",
            (f"org.apache.kafka:kafka_{SCALA}:{KAFKA_BROKER_VERSION}",),
            "kafka/Kafka.class",
            shares_spark_classpath=False,
        ),
    }


def check_pair() -> str | None:
    """Why the installed pyspark and delta-spark do not go together, or None if they do."""
    spark, delta = spark_version(), delta_version()
    wanted = DELTA_FOR_SPARK.get(spark)
    supported = ", ".join(f"pyspark {s} with delta-spark {d}" for s, d in DELTA_FOR_SPARK.items())
    if wanted is None:
        return f"pyspark {spark} is not a supported Spark line (supported: {supported}): run make setup"
    if delta is not None and delta != wanted:
        return f"pyspark {spark} needs delta-spark {wanted}, found {delta}: run make setup"
    return None


def cache_root() -> Path:
    explicit = os.environ.get("MEDALLION_JARS_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "medallion" / "jars"


def bundle_dir(name: str) -> Path:
    return cache_root() / f"spark-{spark_version()}" / name


def jars(name: str) -> list[str]:
    """The cached jars of bundle ``name`` (sorted paths); [] unless fetched whole and intact."""
    folder = bundle_dir(name)
    manifest = folder / "manifest.json"
    if not manifest.exists():
        return []
    try:
        listed = json.loads(manifest.read_text())
    except ValueError:
        return []
    if listed.get("coordinates") != list(bundles()[name].coordinates):
        return []
    paths = [str(folder / jar) for jar in listed.get("jars", [])]
    return paths if paths and all(os.path.exists(p) for p in paths) else []


def holds_class(paths: Iterable[str], entry: str) -> bool:
    """Whether one of the jars holds ``entry`` and opens as a zip (a truncated jar does not)."""
    for path in paths:
        try:
            with zipfile.ZipFile(path) as jar:
                if entry in jar.namelist():
                    return True
        except (OSError, zipfile.BadZipFile):
            return False
    return False


def usable_jars(name: str) -> list[str]:
    """:func:`jars` if the bundle's marker class is in them, else []."""
    found = jars(name)
    return found if found and holds_class(found, bundles()[name].marker_class) else []


def pyspark_jars_dir() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


_VERSIONED_JAR = re.compile(r"^(?P<artifact>.+?)-(?P<version>\d[^-]*(?:-[A-Za-z0-9.]+)?)\.jar$")


def artifact_name(jar: str) -> str:
    """``org.apache.kafka_kafka-clients-3.9.2.jar`` (Ivy's name) or ``kafka-clients-3.9.2.jar``
    -> ``kafka-clients``."""
    base = os.path.basename(jar)
    if "_" in base.split("-")[0]:  # Ivy prefixes the group and an underscore
        base = base.split("_", 1)[1]
    match = _VERSIONED_JAR.match(base)
    return match.group("artifact") if match else base.removesuffix(".jar")


def _resolve(bundle: Bundle, log) -> list[Path]:
    """Spark's own resolution of ``bundle`` into a scratch Ivy home; the jars it retrieved."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    scratch = Path(tempfile.mkdtemp(prefix=f"medallion-ivy-{bundle.name}-"))
    noop = scratch / "resolved.py"
    noop.write_text("")
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "PYSPARK_PYTHON": sys.executable,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [
        str(spark_home / "bin" / "spark-submit"),
        "--conf",
        f"spark.jars.ivy={scratch / 'ivy'}",
        "--packages",
        bundle.describe(),
        str(noop),
    ]
    log(f"jvm: resolving {bundle.describe()} from Maven Central")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    retrieved = sorted((scratch / "ivy" / "jars").glob("*.jar"))
    if done.returncode != 0 or not retrieved:
        unresolved = [
            line.strip() for line in done.stderr.splitlines() if "not found" in line or "UNRESOLVED" in line
        ]
        reason = unresolved[0] if unresolved else (done.stderr.strip().splitlines() or ["no output"])[-1]
        shutil.rmtree(scratch, ignore_errors=True)
        raise OSError(f"could not resolve {bundle.describe()}: {reason}")
    return retrieved


def fetch(names: Sequence[str] = ("delta", "kafka", "broker"), log=print) -> dict[str, str]:
    """Resolve each bundle not cached yet; ``{name: "cached" | "fetched" | reason it failed}``."""
    outcome: dict[str, str] = {}
    shipped = {artifact_name(j.name) for j in pyspark_jars_dir().glob("*.jar")}
    for name in names:
        bundle = bundles()[name]
        if usable_jars(name):
            outcome[name] = "cached"
            continue
        try:
            retrieved = _resolve(bundle, log)
        except (OSError, subprocess.TimeoutExpired) as exc:
            outcome[name] = str(exc)
            continue
        keep = [
            p for p in retrieved if not (bundle.shares_spark_classpath and artifact_name(p.name) in shipped)
        ]
        target = bundle_dir(name)
        staging = target.with_name(f".{name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for path in keep:
            shutil.copy2(path, staging / path.name)
        manifest = {"coordinates": list(bundle.coordinates), "jars": sorted(p.name for p in keep)}
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1))
        shutil.rmtree(retrieved[0].parent.parent.parent, ignore_errors=True)
        # Renamed into place whole: a reader never sees half a bundle.
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        outcome[name] = "fetched"
        log(f"jvm: {name}: {len(keep)} jars in {target}")
    return outcome


SCORING_SOURCE = Path(__file__).parent / "model" / "native" / "java"
SCORING_CLASS = "io.medallion.scoring.TreeEnsemble"


def scoring_jar() -> Path:
    """Where the scoring jar for this pyspark and this source is (or would be) cached."""
    import hashlib

    digest = hashlib.sha256()
    for source in sorted(SCORING_SOURCE.rglob("*.java")):
        digest.update(source.relative_to(SCORING_SOURCE).as_posix().encode())
        digest.update(source.read_bytes())
    return bundle_dir("scoring") / f"medallion-scoring-{digest.hexdigest()[:12]}.jar"


def usable_scoring_jar() -> list[str]:
    """``[path]`` of the built scoring jar, [] if it is not built (or not intact)."""
    jar = scoring_jar()
    entry = SCORING_CLASS.replace(".", "/") + ".class"
    return [str(jar)] if jar.exists() and holds_class([str(jar)], entry) else []


def javac() -> str | None:
    """A Java compiler: $JAVA_HOME's, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "javac", os.X_OK):
        return str(Path(home) / "bin" / "javac")
    return shutil.which("javac")


def build_scoring_jar(log=print) -> str:
    """Compile the scoring jar unless cached: "cached" | "built" | the reason it was not built."""
    if usable_scoring_jar():
        return "cached"
    compiler = javac()
    if compiler is None:
        return "no javac (a JDK) on PATH or in $JAVA_HOME"
    target = scoring_jar()
    sources = [str(p) for p in sorted(SCORING_SOURCE.rglob("*.java"))]
    with tempfile.TemporaryDirectory(prefix="medallion-scoring-") as scratch:
        classes = Path(scratch) / "classes"
        # --release 17: the oldest JVM Spark 4 runs on, whichever JDK compiles it.
        command = [
            compiler,
            "--release",
            "17",
            "-nowarn",
            "-cp",
            str(pyspark_jars_dir() / "*"),
            "-d",
            str(classes),
            *sources,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            return f"javac failed: {(done.stderr.strip().splitlines() or ['no output'])[0]}"
        staging = Path(scratch) / target.name
        with zipfile.ZipFile(staging, "w", zipfile.ZIP_DEFLATED) as jar:
            for path in sorted(classes.rglob("*.class")):
                jar.write(path, path.relative_to(classes).as_posix())
        # Jars of other sources stay: another checkout or install may be using its own.
        target.parent.mkdir(parents=True, exist_ok=True)
        # Copied beside, then renamed into place: a session never sees half a jar.
        partial = target.with_suffix(".partial")
        shutil.copy2(staging, partial)
        partial.rename(target)
    log(f"jvm: scoring: built {target}")
    return "built"


def broker_classpath() -> list[str]:
    """The broker bundle plus the Scala library pyspark ships (Spark's resolution leaves it out)."""
    found = usable_jars("broker")
    if not found:
        return []
    return found + [str(p) for p in sorted(pyspark_jars_dir().glob("scala-library-*.jar"))]


def how_to_fetch(name: str) -> str:
    return f"run make setup (or python -m medallion.jvm fetch {name}) where Maven Central is reachable"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medallion.jvm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help="resolve the bundles into the cache (offline: say what is missing)")
    get.add_argument("names", nargs="*", metavar="{delta,kafka,broker,scoring}")
    sub.add_parser("show", help="the cache folder and what it holds")
    path = sub.add_parser("classpath", help="comma-separated cached jars, for spark-submit --jars")
    path.add_argument("names", nargs="*", metavar="{delta,kafka,scoring}")
    args = parser.parse_args(argv)
    known = {
        "fetch": ["delta", "kafka", "broker", "scoring"],
        "classpath": ["delta", "kafka", "scoring"],
        "show": [],
    }[args.command]
    names = getattr(args, "names", None) or known
    if unknown := [n for n in names if n not in known]:
        parser.error(f"unknown bundle {unknown[0]!r}: choose from {', '.join(known)}")
    args.names = names
    if args.command == "classpath":
        print(",".join(jar for name in args.names for jar in _usable(name)))
        return 0
    if args.command == "show":
        for name in [*bundles(), "scoring"]:
            found = _usable(name)
            print(f"{name}: {len(found)} jars in {bundle_dir(name)}" if found else f"{name}: not fetched")
        return 0
    if problem := check_pair():
        print(f"error: {problem}", file=sys.stderr)
        return 2
    outcome = fetch([n for n in args.names if n != "scoring"])
    if "scoring" in args.names:
        outcome["scoring"] = build_scoring_jar()
    missing = {name: why for name, why in outcome.items() if why not in ("cached", "fetched", "built")}
    for name, why in missing.items():
        # Setup goes on without them: the embedded engine serves, native scoring runs its trees
        # as SQL expressions; doctor names what is missing.
        print(
            f"warning: {name} jars not available ({why}); "
            + (
                "native scoring runs its trees as SQL expressions"
                if name == "scoring"
                else "the embedded Delta engine still works"
            ),
            file=sys.stderr,
        )
    if not missing:
        print(f"jvm: {', '.join(args.names)} ready in {cache_root()}")
    return 0


def _usable(name: str) -> list[str]:
    return usable_scoring_jar() if name == "scoring" else usable_jars(name)


if __name__ == "__main__":
    sys.exit(main())
