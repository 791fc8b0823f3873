"""`o2o demo`: the loop on the local stack, start to finish, saying what happens while it happens.

Starts the stack, creates the topics, starts a worker, sends a simulated morning of O2O traffic
(plus a few broken records, so the dead-letter path shows), waits until every accepted event is
in a session, prints what came out, and stops what it started (unless `keep_running`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from typing import Any, Callable

from pipeline.config import Settings
from pipeline.simulate import Mix, generate

BROKEN_RECORDS = [b"", b"\x00\x00\x00\x00\x65not avro", b"{\"event_id\": \"json-on-an-avro-topic\"}"]


def run_demo(settings: Settings, say: Callable[[str], None], persons: int = 200, seed: int = 7,
             keep_running: bool = False, timeout_s: float = 120.0) -> dict[str, Any]:
    from agents.admin import create_topics, migrate_clickhouse
    from pipeline.stack import LocalStack

    stack = LocalStack(settings)
    say("starting the local stack (Tansu broker, ClickHouse)")
    stack.up(report=lambda line: say(f"  {line}"))
    say("creating topics and the ClickHouse schema (o2o init)")
    create_topics(settings)
    migrate_clickhouse(settings)
    say("starting a worker (o2o worker): ingest, identity, sessions and visits")
    worker = start_worker(settings)
    try:
        summary = drive(settings, worker, say, persons, seed, timeout_s)
    finally:
        if not keep_running:
            say("stopping the worker and the local stack")
            worker.terminate()
            worker.wait(timeout=30)
            stack.down()
    if keep_running:
        say(f"still running: worker pid {worker.pid}, metrics on :{settings.metrics_port}; "
            "`o2o stack down` and kill the worker to stop")
    return summary


def start_worker(settings: Settings) -> subprocess.Popen:
    log = open(settings.state_dir / "demo-worker.log", "ab")
    env = {**os.environ, "O2O_STATE_DIR": str(settings.state_dir),
           "O2O_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "O2O_TOPIC_PREFIX": settings.topic_prefix, "O2O_METRICS_PORT": str(settings.metrics_port)}
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "worker"], stdout=log, stderr=subprocess.STDOUT,
                            env=env)


def drive(settings: Settings, worker: subprocess.Popen, say, persons: int, seed: int, timeout_s: float) -> dict:
    from confluent_kafka import Producer

    from pipeline.producer import EventProducer

    events = generate(seed, start_ms=(int(time.time() * 1000) // 3_600_000 - 5) * 3_600_000, mix=Mix(persons=persons))
    say(f"sending {len(events)} simulated events (browse → store visit → purchase → share or complain; "
        f"passers-by probing the Wi-Fi) and {len(BROKEN_RECORDS)} broken records")
    with EventProducer(settings) as producer:
        # As live traffic arrives: in time order, a few seconds' worth per flush.
        for start in range(0, len(events), 25):
            producer.send_many(events[start:start + 25])
            producer.flush()
    raw = Producer(settings.kafka_client_config())
    for value in BROKEN_RECORDS:
        raw.produce(settings.topic("browse"), value=value)
    raw.flush(10)

    deadline = time.monotonic() + timeout_s
    expected = producer.stats.delivered
    while True:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with code {worker.returncode}; "
                               f"see {settings.state_dir / 'demo-worker.log'}")
        metrics = scrape(settings.metrics_port)
        done = metrics.get("o2o_journey_events_total", 0)
        say(f"  accepted {metrics.get('o2o_events_accepted_total', 0):.0f}  "
            f"dead letters {metrics.get('o2o_dead_letters_total', 0):.0f}  sessionised {done:.0f} / {expected}")
        if done >= expected and metrics.get("o2o_dead_letters_total", 0) >= len(BROKEN_RECORDS):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"not everything was processed within {timeout_s:.0f} s; "
                               f"see {settings.state_dir / 'demo-worker.log'}")
        time.sleep(1)
    return summarise(settings, metrics, say)


def scrape(port: int) -> dict[str, float]:
    """Metric totals (labels summed) from a worker's Prometheus endpoint; {} until it is up."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    totals: Counter = Counter()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            totals[name.split("{")[0]] += float(value)
    return dict(totals)


def summarise(settings: Settings, metrics: dict[str, float], say) -> dict[str, Any]:
    from agents.changelog import read_to_end
    from pipeline.serde import EventCodec, registry_from_settings

    codec = EventCodec(registry_from_settings(settings))
    latest: dict[str, dict] = {}
    for logical in ("sessions", "visits"):
        for message in read_to_end(settings, settings.topic(logical)):
            for record in codec.decode_outputs(message.value())[1]:
                latest[record.get("session_id") or "v" + record["visit_id"]] = record
    sessions = [r for r in latest.values() if "session_id" in r and r["state"] != "absorbed"]
    visits = [r for r in latest.values() if "visit_id" in r and r["state"] != "absorbed"]
    o2o = [s for s in sessions if s["online_to_offline"]]
    classes = Counter(v["class"] for v in visits)
    summary = {
        "accepted": int(metrics.get("o2o_events_accepted_total", 0)),
        "duplicates": int(metrics.get("o2o_duplicates_total", 0)),
        "dead_letters": int(metrics.get("o2o_dead_letters_total", 0)),
        "person_merges": int(metrics.get("o2o_person_merges_total", 0)),
        "sessions": len(sessions), "online_to_offline_sessions": len(o2o),
        "visits": len(visits), "visitors": classes["visitor"], "passersby": classes["passerby"],
        "revenue_cents": sum(s["revenue_cents"] for s in sessions),
    }
    say("")
    say(f"{summary['accepted']} events accepted, {summary['dead_letters']} dead letters "
        f"(see `o2o dlq tail`), {summary['person_merges']} anonymous persons recognised as members")
    say(f"{len(sessions)} sessions, {len(o2o)} of them online → offline; {len(visits)} store visits: "
        f"{classes['visitor']} visitors, {classes['passerby']} passers-by")
    for session in sorted(o2o, key=lambda s: -s["revenue_cents"])[:3]:
        say(f"  {session['person_id']}: {session['event_count']} events {dict(session['counts'])} "
            f"at {', '.join(session['stores'])}, paid {session['revenue_cents'] / 100:.2f}")
    say(f"topics: {settings.topic('sessions')}, {settings.topic('visits')}, {settings.topic('identity')}, "
        f"{settings.topic('dlq')}; triggers and ClickHouse KPIs come next (README, Status)")
    return summary
