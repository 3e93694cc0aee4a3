"""A single-node Kafka broker (KRaft: broker and controller in one JVM) on 127.0.0.1.

Apache Kafka's own jars come from Maven Central through :mod:`medallion.jvm` (``make setup``);
no Docker, no ZooKeeper. ``make kafka-up`` / ``make kafka-down`` run it for the storage root's
lakehouse (port from ``stream.kafka.local_port``, logs under ``<root>/kafka/``); the tests
start their own on a free port.

Usage::

    broker = LocalBroker(Path("lakehouse/kafka"), port=9092)
    broker.start()                     # formats the log dir on first start; waits until it answers
    broker.create_topic("events", partitions=2)
    broker.stop()

    python -m medallion.kafka.broker up|down|status [--env local] [--set key=value]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from medallion.errors import EnvironmentProblem


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class LocalBroker:
    """One KRaft node listening on ``127.0.0.1:port`` (its controller on ``controller_port``)."""

    def __init__(self, directory: Path, port: int, controller_port: int | None = None):
        if not 0 < port < 65536:
            raise ValueError(f"port {port} is not a TCP port")
        self.directory = Path(directory)
        self.port = port
        self.controller_port = controller_port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.directory / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "broker.log"

    def _classpath(self) -> str:
        from medallion import jvm

        jars = jvm.broker_classpath()
        if not jars:
            raise EnvironmentProblem(f"Kafka's broker jars are not fetched: {jvm.how_to_fetch('broker')}")
        return os.pathsep.join(jars)

    def _java(self) -> str:
        home = os.environ.get("JAVA_HOME")
        return str(Path(home) / "bin" / "java") if home else "java"

    def _properties(self) -> Path:
        props = self.directory / "server.properties"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.directory / "data"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # A topic is created on purpose (create_topic): a typo in conf must not make one.
            "auto.create.topics.enable": "false",
        }
        props.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        return props

    def start(self, timeout: float = 90) -> LocalBroker:
        """Format the log dir if new, start the JVM, and wait until the broker answers."""
        if _accepts(self.port):
            raise EnvironmentProblem(f"127.0.0.1:{self.port} is already in use: choose another port")
        self.directory.mkdir(parents=True, exist_ok=True)
        classpath, java = self._classpath(), self._java()
        props = self._properties()
        if not (self.directory / "data" / "meta.properties").exists():
            formatted = subprocess.run(
                [java, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", uuid.uuid4().hex[:22],
                 "-c", str(props)],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            if formatted.returncode != 0:
                raise EnvironmentProblem(
                    f"formatting the Kafka log dir failed: {formatted.stderr.strip()[-300:]}"
                )
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                [java, "-Xmx512m", "-cp", classpath, "kafka.Kafka", str(props)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_file.write_text(str(self.process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EnvironmentProblem(f"the Kafka broker exited at start: see {self.log_file}")
            if _accepts(self.port) and self._answers():
                return self
            time.sleep(0.3)
        self.stop()
        raise EnvironmentProblem(f"the Kafka broker did not answer on {self.bootstrap} in {timeout:.0f} s")

    def _answers(self) -> bool:
        from medallion.kafka.client import topics

        try:
            topics(self.bootstrap, timeout=2)
        except EnvironmentProblem:
            return False
        return True

    def create_topic(self, name: str, partitions: int = 1) -> None:
        from medallion.kafka.client import create_topic

        create_topic(self.bootstrap, name, partitions)

    def stop(self, timeout: float = 30) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``); a no-op if it is not running."""
        pid = self.process.pid if self.process else _read_pid(self.pid_file)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid, self.process):
            time.sleep(0.2)
        if _alive(pid, self.process):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        if self.process:
            self.process.wait(timeout=10)
        self.pid_file.unlink(missing_ok=True)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int, process: subprocess.Popen | None) -> bool:
    if process is not None:
        return process.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    from medallion.config import load_settings
    from medallion.errors import MedallionError

    parser = argparse.ArgumentParser(
        prog="python -m medallion.kafka.broker", description=__doc__.splitlines()[0]
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--env", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(env=args.env, overrides=args.overrides)
        kafka = settings.stream.kafka
        broker = LocalBroker(settings.storage.root_path / "kafka", kafka.local_port)
        running = _read_pid(broker.pid_file)
        if args.command == "status":
            alive = running is not None and _alive(running, None)
            state = f"running (pid {running}) on {broker.bootstrap}" if alive else "not running"
            print(f"kafka: {state}")
            return 0
        if args.command == "down":
            broker.stop()
            print("kafka: stopped")
            return 0
        if running is not None and _alive(running, None):
            print(f"kafka: already running (pid {running}) on {broker.bootstrap}")
            return 0
        broker.start()
        for topic in (kafka.topic, kafka.scores_topic, kafka.quarantine_topic):
            if topic:
                broker.create_topic(topic, kafka.local_partitions)
        print(f"kafka: running on {broker.bootstrap} (logs: {broker.log_file}); make kafka-down stops it")
        return 0
    except MedallionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
