"""Kafka beside the lakehouse: a local KRaft broker for development and tests, and the client
helpers the stream's pre-flight checks and ``datagen --to kafka`` use.

Usage::

    from medallion.kafka.broker import LocalBroker

    with LocalBroker(tmp_path / "kafka", port=19092) as broker:
        broker.create_topic("events", partitions=2)
        broker.bootstrap                      # '127.0.0.1:19092'
"""
