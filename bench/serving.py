"""The online service against MLflow's own scoring server, on loopback, same champion, same rows.

Builds a small lakehouse (a trained champion, a night, ``serve materialize``), then starts
``medallion serve api`` and ``mlflow models serve`` of the champion and sends each the same
transactions at a fixed concurrency, bounded in requests and in time:

- medallion, hits: transactions whose inputs the night precomputed (``POST /score``);
- medallion, misses: the same transactions with another amount, so the champion scores them;
- mlflow: the same transactions' feature rows (``POST /invocations``), which is all that
  server can take.

With ``--soak SECONDS`` it then sends misses and hits at a constant rate for that long, runs
``serve materialize`` and moves the champion alias to a new (checked) version in the middle,
and counts lost requests and answers from a version that was not a checked champion.

    .venv/bin/python bench/serving.py --requests 2000 --concurrency 8
    .venv/bin/python bench/serving.py --soak 300
    .venv/bin/python bench/serving.py --scoring pandas_udf    # misses through the pyfunc

A miss runs the champion in-process by ``--scoring`` (``model.scoring``; native by default
here: the trees evaluated in Python, checked equal to the pyfunc at load).

Targets (issue 34): throughput >= 2x MLflow's server; p99 <= 25 ms on misses, <= 5 ms on
hits; 0 errors. Last line JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lib.common import REPO, register_champion_copy, settings_for, train_champion


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = Path(process.log_path).read_text()[-3000:] if getattr(process, "log_path", None) else ""
            raise SystemExit(f"{process.args[:6]} exited with {process.returncode}:\n{log}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer 200 in {timeout} s")


def load(send, payloads: list, concurrency: int, max_seconds: float) -> dict:
    """Send every payload once (or until ``max_seconds``) from ``concurrency`` threads."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop_at = time.monotonic() + max_seconds

    def one(payload) -> None:
        nonlocal errors
        if time.monotonic() > stop_at:
            return
        started = time.perf_counter()
        ok = send(payload) is not None
        elapsed = (time.perf_counter() - started) * 1000
        with lock:
            latencies.append(elapsed)
            errors += not ok

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, payloads))
    seconds = time.monotonic() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else float("nan")

    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(seconds, 2),
        "rps": round(len(latencies) / seconds, 1) if seconds else 0.0,
        "p50_ms": round(pct(0.5), 2),
        "p99_ms": round(pct(0.99), 2),
    }


def client_sender(base: str, path: str):
    """``send(payload)``: the JSON answer on 200, else None.

    One keep-alive ``http.client`` connection per thread: the client shares the cores with the
    servers, so it does the least it can per request (no client library's request objects).
    """
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(base)
    headers = {"Content-Type": "application/json"}
    local = threading.local()

    def send(payload):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        for attempt in range(2):
            connection = getattr(local, "connection", None)
            if connection is None:
                connection = local.connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
            try:
                connection.request("POST", path, body, headers)
                answer = connection.getresponse()
                content = answer.read()
            except (OSError, http.client.HTTPException):
                # A dropped keep-alive connection is retried once on a new one.
                connection.close()
                local.connection = None
                if attempt:
                    return None
                continue
            return json.loads(content) if answer.status == 200 else None
        return None

    return send


def encoded(payloads: list) -> list[bytes]:
    """The request bodies, encoded before the clock starts."""
    return [json.dumps(p).encode() for p in payloads]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per side and kind")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=60, help="time bound per side and kind")
    parser.add_argument("--soak", type=float, default=0, help="seconds of constant-rate run (0: none)")
    parser.add_argument("--rate", type=float, default=50, help="requests per second during --soak")
    parser.add_argument(
        "--scoring",
        choices=("pandas_udf", "native", "auto"),
        default="native",
        help="model.scoring of the medallion service: how a miss runs the champion",
    )
    args = parser.parse_args()

    from medallion.batch import NightlyBatch
    from medallion.serving.materialize import Materializer
    from medallion.serving.online import Transaction
    from medallion.serving.rowmath import row_features
    from medallion.serving.stores import open_store
    from medallion.spark import get_spark

    scratch = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    processes: list[subprocess.Popen] = []
    try:
        root = scratch / "lake"
        settings = settings_for(root, None, "model.train.max_iter=40", "delta.engine=rs")
        spark = get_spark(settings)
        print("training a champion and running a night...", flush=True)
        registry = train_champion(spark, root, days=4, events_per_day=800)
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        NightlyBatch(settings, spark).run(yesterday, ingest=False)
        report = Materializer(settings, spark, log=lambda _: None).run()
        print(f"  materialized generation {report.generation}: {report.from_serving} precomputed", flush=True)

        landed = []
        for path in sorted(Path(settings.storage.landing_events).glob(f"events-{yesterday:%Y%m%d}-*.jsonl")):
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                    landed.append(Transaction.model_validate(record).model_dump(mode="json"))
                except ValueError:
                    continue
        hits = [landed[i % len(landed)] for i in range(args.requests)]
        misses = [
            t | {"event_id": f"{t['event_id']}-m{i}", "amount": f"{float(t['amount']) + 0.01 * (i + 1):.2f}"}
            for i, t in enumerate(hits)
        ]
        store = open_store(settings)
        rows = []
        for t in misses:
            txn = Transaction.model_validate(t)
            rows.append(row_features(txn.model_dump(), store.profile(txn.card_id, txn.event_date)))

        env = os.environ | {
            "MEDALLION__STORAGE__ROOT": str(root),
            "MEDALLION__DELTA__ENGINE": "rs",
            "MEDALLION__DATAGEN__CARDS": "2000",
            "MEDALLION__MODEL__SCORING": args.scoring,
            "MLFLOW_TRACKING_URI": f"sqlite:///{registry}",
            # mlflow models serve runs `uvicorn` from PATH: this interpreter's.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        ours, theirs = free_port(), free_port()
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "medallion.cli", "serve", "api", "--port", str(ours)],
                env=env, cwd=REPO, stdout=open(scratch / "medallion.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
            )
        )  # fmt: skip
        processes[-1].log_path = scratch / "medallion.log"
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{settings.model.name}@champion",
                 "--env-manager", "local", "--host", "127.0.0.1", "--port", str(theirs)],
                env=env, cwd=scratch, stdout=open(scratch / "mlflow.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
            )
        )  # fmt: skip
        processes[-1].log_path = scratch / "mlflow.log"
        wait_http(f"http://127.0.0.1:{ours}/ready", processes[0])
        wait_http(f"http://127.0.0.1:{theirs}/ping", processes[1])

        score = client_sender(f"http://127.0.0.1:{ours}", "/score")
        invoke = client_sender(f"http://127.0.0.1:{theirs}", "/invocations")
        # Warm both up (imports, first predictions) before anything is timed.
        load(score, encoded(misses[:50]), args.concurrency, 30)
        load(invoke, encoded([{"dataframe_records": [r]} for r in rows[:50]]), args.concurrency, 30)
        figures = {
            "mlflow": load(
                invoke,
                encoded([{"dataframe_records": [r]} for r in rows]),
                args.concurrency,
                args.max_seconds,
            ),
            "misses": load(score, encoded(misses[50:]), args.concurrency, args.max_seconds),
            "hits": load(score, encoded(hits), args.concurrency, args.max_seconds),
        }
        for name, f in figures.items():
            print(f"  {name:7s} {f}", flush=True)
        ratio = figures["misses"]["rps"] / figures["mlflow"]["rps"] if figures["mlflow"]["rps"] else 0.0
        errors = sum(f["errors"] for f in figures.values())
        soak = run_soak(settings, spark, score, misses, hits, args) if args.soak else None
        ok = (
            ratio >= 2
            and figures["misses"]["p99_ms"] <= 25
            and figures["hits"]["p99_ms"] <= 5
            and errors == 0
            and (soak is None or soak["ok"])
        )
        print(
            json.dumps(
                {
                    "bench": "serving",
                    "metric": "POST /score misses per second / mlflow models serve per second",
                    "ratio": round(ratio, 3),
                    "target": ">= 2, p99 misses <= 25 ms, hits <= 5 ms, 0 errors",
                    "ok": ok,
                    "concurrency": args.concurrency,
                    "scoring": args.scoring,
                    **{f"{k}_{m}": v for k, f in figures.items() for m, v in f.items()},
                    **({"soak": soak} if soak else {}),
                }
            )
        )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(scratch, ignore_errors=True)


def run_soak(settings, spark, score, misses, hits, args) -> dict:
    """Constant rate for ``--soak`` seconds; a materialize and a champion change in the middle."""

    from medallion.model.registry import version_for
    from medallion.serving.materialize import Materializer

    answers: list = []
    lock = threading.Lock()
    payloads = [p for pair in zip(misses, hits, strict=True) for p in pair]
    checked = {version_for(settings, "champion")}
    stop = time.monotonic() + args.soak
    middle = time.monotonic() + args.soak / 2
    changed = False

    def send(payload) -> None:
        answer = score(payload)
        with lock:
            answers.append(answer)

    interval, sent = 1 / args.rate, 0
    next_at = time.monotonic()
    with ThreadPoolExecutor(args.concurrency) as pool:
        while time.monotonic() < stop:
            if not changed and time.monotonic() >= middle:
                # The night's refresh, then a new champion (the same artifacts, gate record copied).
                Materializer(settings, spark, log=lambda _: None).run()
                checked.add(register_champion_copy(settings, "champion"))
                changed = True
            pool.submit(send, payloads[sent % len(payloads)])
            sent += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    lost = sum(answer is None for answer in answers) + (sent - len(answers))
    versions = {answer["model_version"] for answer in answers if answer is not None}
    unchecked = sum(1 for a in answers if a is not None and a["model_version"] not in checked)
    return {
        "seconds": args.soak,
        "sent": sent,
        "lost": lost,
        "unchecked": unchecked,
        "versions": sorted(versions),
        "ok": lost == 0 and unchecked == 0 and len(versions) == 2,
    }


if __name__ == "__main__":
    main()
