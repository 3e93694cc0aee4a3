"""Small Kafka client calls (confluent-kafka): list and create topics, produce lines, and the
stream's pre-flight check that the broker answers and the topic exists.

Usage::

    check_reachable(settings.stream.kafka)          # StreamConfigError in one line if not
    produce_lines("127.0.0.1:9092", "events", ['{"event_id": ...}', ...])
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from medallion.errors import EnvironmentProblem, StreamConfigError

# Client options Spark takes as kafka.<option>, in librdkafka's spelling where it differs.
_RENAMED = {"sasl.jaas.config": None}  # JVM-only: librdkafka takes sasl.username/password instead


# librdkafka writes its own log lines (a refused connection, say) to stderr from its threads,
# after the one-line error that says the same: they go to this logger instead, silent unless
# the application configures logging.
_LOG = logging.getLogger("medallion.kafka")
_LOG.addHandler(logging.NullHandler())


def _client_conf(bootstrap: str, options: Mapping[str, str] | None = None) -> dict[str, Any]:
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": _LOG}
    for key, value in (options or {}).items():
        if key in _RENAMED:
            continue
        conf[key] = value
    return conf


def _admin(bootstrap: str, options: Mapping[str, str] | None = None):
    try:
        from confluent_kafka.admin import AdminClient
    except ImportError:
        raise EnvironmentProblem("confluent-kafka is not installed: pip install 'medallion[kafka]'") from None
    return AdminClient({**_client_conf(bootstrap, options), "socket.timeout.ms": 5000})


def topics(bootstrap: str, timeout: float = 5, options: Mapping[str, str] | None = None) -> set[str]:
    """The broker's topics; :class:`EnvironmentProblem` if no broker answers within ``timeout``."""
    from confluent_kafka import KafkaException

    admin = _admin(bootstrap, options)
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise EnvironmentProblem(
            f"no Kafka broker answered at {bootstrap} within {timeout:g} s ({exc})"
        ) from None
    return {name for name in metadata.topics if not name.startswith("__")}


def create_topic(
    bootstrap: str, name: str, partitions: int = 1, options: Mapping[str, str] | None = None
) -> None:
    """Create ``name`` (replication 1) unless it exists."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    admin = _admin(bootstrap, options)  # held: a collected client cancels its futures
    future = admin.create_topics([NewTopic(name, partitions, 1)])[name]
    try:
        future.result(timeout=30)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise EnvironmentProblem(f"creating Kafka topic {name} on {bootstrap} failed: {exc}") from None


def check_reachable(kafka, topics_needed: Sequence[str], timeout: float = 10) -> None:
    """One line naming what to change when the broker does not answer or a topic is missing.

    Skipped where the Python client is not installed (a cluster with only Spark's connector):
    the query then reports what the broker says.
    """
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return
    try:
        present = topics(kafka.bootstrap_servers, timeout=timeout, options=kafka.options)
    except EnvironmentProblem as exc:
        raise StreamConfigError(
            f"stream.kafka.bootstrap_servers={kafka.bootstrap_servers}: {exc}; start the broker "
            "(make kafka-up for a local one) or fix the address"
        ) from None
    for topic in topics_needed:
        if topic not in present:
            raise StreamConfigError(
                f"Kafka topic {topic!r} does not exist on {kafka.bootstrap_servers}: create it "
                "(make kafka-up creates the stream.kafka topics conf names) or fix the name"
            )


def produce_lines(
    bootstrap: str, topic: str, lines: Sequence[str], options: Mapping[str, str] | None = None
) -> int:
    """Produce each line as one record's value (key: none); returns how many were acknowledged."""
    from confluent_kafka import Producer

    producer = Producer({**_client_conf(bootstrap, options), "linger.ms": 5, "enable.idempotence": True})
    failed: list[str] = []

    def delivered(err, _msg) -> None:
        if err is not None:
            failed.append(str(err))

    for line in lines:
        while True:
            try:
                producer.produce(topic, value=line.encode(), on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(60)
    if failed:
        raise EnvironmentProblem(f"{len(failed)} of {len(lines)} records to {topic} failed: {failed[0]}")
    return len(lines)
