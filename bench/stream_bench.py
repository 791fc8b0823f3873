"""Events/s through the stream path on the local stack: ingress -> ingest agent -> journey agent.

Starts a private local stack (temporary state, free ports), creates the topics, sends N simulated
events with the producer SDK (batch records), then starts one `o2o worker` and times it from its
first accepted event until the journey agent has processed all N. Group join and start-up are
excluded; Avro decode, validation, hashing, dedup, identity, sessions, visits, every output and
every changelog write are included.

    .venv/bin/python bench/stream_bench.py --events 200000
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agents.admin import create_topics
from pipeline.config import load_settings
from pipeline.demo import scrape
from pipeline.producer import EventProducer
from pipeline.simulate import Mix, generate
from pipeline.stack import LocalStack

DAY_MS = 86_400_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape_samples(port: int) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        lines = response.read().decode().splitlines()
    return {name: float(value) for name, _, value in (l.rpartition(" ") for l in lines if l and l[0] != "#")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="about this many events (default 200,000)")
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="o2o-stream-bench-"))
    settings = load_settings(None, state_dir=state, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
                             clickhouse_port=free_port(), clickhouse_http_port=free_port(),
                             metrics_port=free_port(), kafka_session_timeout_ms=6000)
    stack = LocalStack(settings)
    stack.up()
    worker = None
    try:
        create_topics(settings)
        start_ms = int(time.time() * 1000) - 4 * 3_600_000
        events = generate(1, start_ms, Mix(persons=max(1, args.events * 10 // 66)))
        sent_at = time.perf_counter()
        with EventProducer(settings) as producer:
            producer.send_many(events)
        total = producer.stats.delivered
        print(f"sent {total} events in {time.perf_counter() - sent_at:.1f} s "
              f"({total / (time.perf_counter() - sent_at):,.0f}/s through the SDK)")
        env = {**os.environ, "O2O_STATE_DIR": str(state),
               "O2O_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
               "O2O_METRICS_PORT": str(settings.metrics_port), "O2O_KAFKA_SESSION_TIMEOUT_MS": "6000",
               # A backlog of several hours read from 20 partitions: keep every event on time.
               "O2O_ALLOWED_LATENESS_MS": str(DAY_MS), "O2O_LOG_LEVEL": "WARNING"}
        command = os.environ.get("BENCH_WORKER_PREFIX", "").split() + [sys.executable, "-m", "pipeline.cli", "worker"]
        worker = subprocess.Popen(command, env=env,
                                  stdout=subprocess.DEVNULL, stderr=open(state / "worker.log", "wb"))
        while scrape(settings.metrics_port).get("o2o_events_accepted_total", 0) == 0:
            time.sleep(0.05)
        started = time.perf_counter()
        while scrape(settings.metrics_port).get("o2o_journey_events_total", 0) < total:
            if worker.poll() is not None:
                raise SystemExit(f"worker exited; see {state / 'worker.log'}")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        samples = scrape_samples(settings.metrics_port)
        for name, value in sorted(samples.items()):
            if name.startswith("o2o_step_seconds_total"):
                print(f"  {name:60} {value:6.1f} s")
        print(f"ingest -> sessions: {total} events in {elapsed:.1f} s = {total / elapsed:,.0f} events/s "
              f"(one worker, 2 cores shared with the broker)")
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        stack.down()


if __name__ == "__main__":
    main()
