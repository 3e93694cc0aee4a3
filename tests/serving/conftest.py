"""Fixtures of the online side: a real redis-server on a free loopback port, and both stores."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """Debian's redis-server on 127.0.0.1:<free port>, nothing persisted, for the whole session."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: apt-get install -y redis-server (.ci/run does it)")
    port = _free_port()
    folder = Path(tmp_path_factory.mktemp("redis"))
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"redis-server did not start on 127.0.0.1:{port}")
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(params=["sqlite", "redis"])
def store_kind(request) -> str:
    return request.param


@pytest.fixture
def online_store(store_kind, request, tmp_path):
    """A fresh store of each kind (redis: its own namespace on the session's server)."""
    from medallion.config import ServingSettings

    if store_kind == "sqlite":
        from medallion.serving.sqlite_store import SqliteStore

        store = SqliteStore(tmp_path / "online.sqlite")
    else:
        from medallion.serving.redis_store import RedisStore

        url = request.getfixturevalue("redis_url")
        store = RedisStore(
            url, ServingSettings(redis_namespace=f"t{abs(hash(request.node.name))}", redis_grace_seconds=2)
        )
    yield store
    store.close()
