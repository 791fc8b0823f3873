"""Load test of the HTTP collector on loopback: accepted events/s and request latency.

Starts a private local stack (temporary state, free ports), creates the topics and starts
`o2o collector`; this process is the load generator (aiohttp client, `--connections` concurrent
connections, each sending batches of `--batch` events back to back). Every request is a JSON array
of canonical events (60 % wifi_checkin with a raw MAC to hash, 35 % browse, 5 % purchase). A 202
means the broker acknowledged the events, so accepted events/s is events on Kafka per second.

    .venv/bin/python bench/collector_load.py --seconds 20 --connections 8
    .venv/bin/python bench/collector_load.py --url http://127.0.0.1:8088 --key KEY   # a running collector
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import aiohttp

KEY = "load-test-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_bodies(count: int, batch: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    bodies = []
    for n in range(count):
        events = []
        for i in range(batch):
            base = {"event_id": f"lg-{n}-{i}", "occurred_at": now_ms - rng.randrange(600_000),
                    "member_id": None, "device_id": f"d-{rng.randrange(50_000)}"}
            roll = rng.random()
            if roll < 0.60:
                mac = ":".join(f"{rng.randrange(256):02x}" for _ in range(6))
                events.append({**base, "event_type": "wifi_checkin", "channel": "wifi", "wifi_mac": mac,
                               "store_id": f"s-{rng.randrange(50)}", "kind": rng.choice(["probe", "associate"]),
                               "ap_id": f"ap-{rng.randrange(8)}", "rssi": -rng.randrange(40, 90)})
            elif roll < 0.95:
                events.append({**base, "event_type": "browse", "channel": "app", "page": "/product",
                               "sku": f"sku-{rng.randrange(5000)}"})
            else:
                events.append({**base, "event_type": "purchase", "channel": "app", "order_id": f"o-{n}-{i}",
                               "status": "paid", "amount_cents": rng.randrange(100, 50_000), "currency": "CNY"})
        bodies.append(json.dumps([{k: v for k, v in e.items() if v is not None} for e in events]).encode())
    return bodies


async def connection(session: aiohttp.ClientSession, url: str, key: str, bodies: list[bytes], offset: int,
                     warmup_end: float, end: float, results: dict) -> None:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    n = offset
    while True:
        started = time.perf_counter()
        if started >= end:
            return
        async with session.post(url, data=bodies[n % len(bodies)], headers=headers) as response:
            payload = await response.read()
        finished = time.perf_counter()
        n += 1
        if started < warmup_end:
            continue
        results["statuses"][response.status] += 1
        results["latencies"].append(finished - started)
        if response.status == 202:
            results["accepted"] += json.loads(payload)["accepted"]


async def run_load(url: str, key: str, bodies: list[bytes], connections: int, seconds: float, warmup: float) -> dict:
    results = {"statuses": Counter(), "latencies": [], "accepted": 0}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        begin = time.perf_counter()
        warmup_end, end = begin + warmup, begin + warmup + seconds
        await asyncio.gather(*(connection(session, url, key, bodies, i * 7, warmup_end, end, results)
                               for i in range(connections)))
        measured = time.perf_counter() - warmup_end
    latencies = sorted(results["latencies"])

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2) if latencies else 0.0

    return {
        "seconds": round(measured, 2), "connections": connections, "requests": len(latencies),
        "statuses": {str(k): v for k, v in sorted(results["statuses"].items())},
        "accepted_events": results["accepted"], "accepted_events_per_s": round(results["accepted"] / measured),
        "requests_per_s": round(len(latencies) / measured),
        "latency_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": pct(1.0)},
    }


def start_collector(settings, port: int, log_path: Path, linger_ms: int | None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("O2O_")}
    env.update(O2O_STATE_DIR=str(settings.state_dir), O2O_KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
               O2O_COLLECTOR_API_KEYS=json.dumps([{"key": KEY, "source": "load", "rate_limit_events_per_s": 1e9,
                                                   "rate_limit_burst": 1_000_000}]))
    if linger_ms is not None:
        env["O2O_COLLECTOR_LINGER_MS"] = str(linger_ms)
    with open(log_path, "ab") as log:
        process = subprocess.Popen([str(Path(sys.executable).parent / "o2o"), "collector", "--port", str(port)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"collector exited: {log_path.read_text()[-2000:]}") from None
            time.sleep(0.2)
    raise RuntimeError(f"collector not ready after 30 s; see {log_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="measured duration (default 20)")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured warm-up seconds (default 3)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument("--batch", type=int, default=100, help="events per request (default 100)")
    parser.add_argument("--linger-ms", type=int, help="collector_linger_ms of the collector started here")
    parser.add_argument("--url", help="a running collector (default: start a private stack and collector)")
    parser.add_argument("--key", default=KEY, help="API key for --url")
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = parser.parse_args()
    bodies = make_bodies(200, args.batch)
    if args.url:
        result = asyncio.run(run_load(args.url.rstrip("/") + "/v1/events", args.key, bodies, args.connections,
                                      args.seconds, args.warmup))
        report(result, args.json)
        return
    from agents.admin import create_topics
    from pipeline.config import load_settings
    from pipeline.stack import LocalStack

    state = Path(tempfile.mkdtemp(prefix="o2o-collector-load-"))
    settings = load_settings(None, state_dir=state, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
                             clickhouse_port=free_port(), clickhouse_http_port=free_port())
    stack = LocalStack(settings)
    stack.up()
    collector = None
    try:
        create_topics(settings)
        port = free_port()
        collector = start_collector(settings, port, state / "collector.log", args.linger_ms)
        result = asyncio.run(run_load(f"http://127.0.0.1:{port}/v1/events", KEY, bodies, args.connections,
                                      args.seconds, args.warmup))
        report(result, args.json)
    finally:
        if collector is not None:
            collector.terminate()
            collector.wait(timeout=60)
        stack.down()


def report(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    lat = result["latency_ms"]
    print(f"{result['accepted_events_per_s']:,} events/s accepted ({result['requests_per_s']:,} requests/s, "
          f"{result['connections']} connections, {result['seconds']} s); latency p50 {lat['p50']} ms, "
          f"p90 {lat['p90']} ms, p99 {lat['p99']} ms, max {lat['max']} ms; statuses {result['statuses']}")


if __name__ == "__main__":
    main()
