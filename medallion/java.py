"""The ``java`` Spark launches for a local driver: where it is, its version, and the options
that map the class archive dumped for it.

Usage::

    from medallion.java import archived_class_options, java_version, require_java

    require_java()                   # 'openjdk version "17.0.15" 2025-04-15', or EnvironmentProblem
    java_version()                   # (17, 'openjdk version "17.0.15" 2025-04-15') or None
    archived_class_options()         # "-XX:SharedArchiveFile=... -Xlog:..." or "" when none fits

The class archive itself is dumped by :mod:`medallion.class_archive` (``make setup``); this
module only finds the one that fits this JVM and these jars, so a session can map it without
importing the code that builds one.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from medallion import jvm
from medallion.errors import EnvironmentProblem


def java_binary() -> str | None:
    """The ``java`` that Spark would launch: ``$JAVA_HOME``'s, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    return java if java and Path(java).exists() else None


def java_version() -> tuple[int, str] | None:
    """``(major, banner)`` of the ``java`` that Spark would launch, or None if there is none."""
    java = java_binary()
    if java is None:
        return None
    # A process asks several times (doctor's rows, the session, its class archive): the JVM
    # starts once per binary, and a replaced binary (a new mtime) is asked again.
    # JAVA_TOOL_OPTIONS changes what it prints, so it is part of the key. A probe that failed
    # (a timeout on a loaded machine) raises out of the cache, so the next call asks again.
    try:
        return _banner_of(
            os.path.realpath(java), os.stat(java).st_mtime_ns, os.environ.get("JAVA_TOOL_OPTIONS")
        )
    except (OSError, subprocess.TimeoutExpired):
        return None


@functools.lru_cache(maxsize=4)
def _banner_of(java: str, _mtime_ns: int, _tool_options: str | None) -> tuple[int, str]:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    # JAVA_TOOL_OPTIONS makes the JVM print "Picked up ..." before its version banner.
    lines = [line for line in out.splitlines() if not line.startswith(("Picked up ", "NOTE: Picked up "))]
    banner = lines[0] if lines else "java"
    quoted = banner.split('"')[1] if '"' in banner else "0"
    major = quoted.split(".")[1] if quoted.startswith("1.") else quoted.split(".")[0]
    return (int(major) if major.isdigit() else 0), banner


def require_java() -> str:
    """The version banner of the ``java`` Spark would launch; EnvironmentProblem if it is
    missing or older than 17."""
    found = java_version()
    if found is None:
        raise EnvironmentProblem(
            "Java not found: install OpenJDK 17+ (e.g. apt-get install openjdk-17-jre-headless) "
            "or set JAVA_HOME"
        )
    if found[0] < 17:
        raise EnvironmentProblem(
            f"Java 17+ is required by Spark 4, found: {found[1]}; set JAVA_HOME to a JDK 17+"
        )
    return found[1]


# HotSpot says why it ignores an archive on these tags; an unused archive is not an error.
ARCHIVE_QUIET = "-Xlog:cds=off,cds+dynamic=off"


def archive_folder() -> Path:
    """The archives of this pyspark installation: each venv has its own jars, so its own."""
    installation = hashlib.sha256(str(jvm.pyspark_jars_dir().resolve()).encode()).hexdigest()[:12]
    return jvm.cache_root() / "class-archive" / installation


def _jar_fingerprints() -> list[str]:
    found: list[str] = []
    roots = [jvm.pyspark_jars_dir(), jvm.cache_root()]
    for root in roots:
        if not root.is_dir():
            continue
        for dirpath, _dirs, files in sorted(os.walk(root)):
            for name in sorted(files):
                if name.endswith(".jar"):
                    stat = os.stat(os.path.join(dirpath, name))
                    found.append(f"{dirpath}/{name}:{stat.st_size}:{int(stat.st_mtime)}")
    return found


def archive_path(java_banner: str | None = None) -> Path | None:
    """Where the archive for this JVM and these jars lives (whether or not it exists yet);
    None without a ``java``."""
    java = java_binary()
    if java is None:
        return None
    banner = java_banner
    if banner is None:
        found = java_version()
        if found is None:
            return None
        banner = found[1]
    digest = hashlib.sha256()
    for part in [os.path.realpath(java), banner, *_jar_fingerprints()]:
        digest.update(part.encode())
        digest.update(b"\0")
    return archive_folder() / f"spark-{jvm.spark_version()}-{digest.hexdigest()[:16]}.jsa"


def archived_class_options(java_banner: str | None = None) -> str:
    """The driver JVM options that map the archive, or "" when none was dumped for this JVM
    and these jars (or ``MEDALLION_CLASS_ARCHIVE=off``)."""
    if os.environ.get("MEDALLION_CLASS_ARCHIVE", "").lower() in ("0", "off", "false", "no"):
        return ""
    path = archive_path(java_banner)
    if path is None or not path.is_file():
        return ""
    return f"-XX:SharedArchiveFile={path} {ARCHIVE_QUIET}"
