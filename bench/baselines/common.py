"""What the baselines share: the events, loading them onto fresh topics, and timing a consumer.

Every contestant gets the same events: `generate_events(n)` takes the first n good events of the
simulator (fixed seed, `pipeline.simulate`) and normalises and hashes them exactly as the producer
SDK does. `load(settings, events, layout)` puts them on five fresh ingress-style topics (one per
event type, `settings.topic_partitions` partitions, explicit retention: Tansu reports none otherwise)
in one of two record layouts:

    single    one event per record, keyed by the person's routing key (strongest identifier)
    batched   `EventCodec.encode_batch` records of up to `output_batch_events` events of one type
              and partition, unkeyed: what the SDK and the pipeline's agents write

Both layouts use the pipeline's partitioner, so one person's events share a partition number.
`Meter` times a contestant from its first counted event to the n-th: consumer-group joins and
start-up are excluded, as in bench/stream_bench.py.

    python bench/baselines/raw_limit.py --events 100000           # a private local stack
    python bench/baselines/raw_limit.py --events 100000 --running  # the stack of O2O_* settings
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # runnable as a script from anywhere
    sys.path.insert(0, str(ROOT))

from pipeline.config import Settings, load_settings  # noqa: E402
from pipeline.ingest import routing_key  # noqa: E402
from pipeline.privacy import IdentifierHasher  # noqa: E402
from pipeline.serde import EventCodec  # noqa: E402
from pipeline.simulate import Mix, Simulation  # noqa: E402
from pipeline.topics import partition_for  # noqa: E402
from pipeline.validation import Rejection, validate  # noqa: E402

LAYOUTS = ("single", "batched")
SEED = 20261122
START_MS = 1_795_305_600_000  # 2026-11-22T00:00:00+08:00, fixed so every run sees the same events
SESSION_GAP_MS = 30 * 60_000
EVENT_TYPES = ("browse", "wifi_checkin", "purchase", "share", "complaint")


def generate_events(n: int, seed: int = SEED) -> list[dict[str, Any]]:
    """The first `n` good events of the simulator, validated and hashed as the SDK sends them."""
    mix = Mix(persons=max(200, n // 9), stores=max(5, n // 5000))
    hasher = IdentifierHasher(b"bench-baselines")
    events: list[dict[str, Any]] = []
    for record in Simulation(seed, START_MS, mix).records():
        event = validate(record.value, record.arrival_ms + 60_000)
        if type(event) is Rejection:
            raise AssertionError(f"the simulator made an invalid good event: {event}")
        hasher.hash_identifiers(event)
        events.append(event)
        if len(events) == n:
            return events
    raise AssertionError("unreachable: the simulation is endless")


def person_of(event: dict[str, Any]) -> str:
    """The key a naive per-person sessionizer uses: the event's strongest identifier (no identity graph)."""
    return routing_key(event)


@dataclass(frozen=True)
class Loaded:
    topics: list[str]
    layout: str
    events: int
    records: int
    load_s: float


def encode_records(events: list[dict[str, Any]], layout: str, partitions: int,
                   batch_events: int = 1000) -> dict[str, list[tuple[int, bytes | None, bytes]]]:
    """event type -> [(partition, key, value)] in the given layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    codec = EventCodec()
    out: dict[str, list[tuple[int, bytes | None, bytes]]] = defaultdict(list)
    if layout == "single":
        for event in events:
            key = person_of(event)
            out[event["event_type"]].append((partition_for(key, partitions), key.encode(), codec.encode(event)))
        return out
    buffers: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        slot = (event["event_type"], partition_for(person_of(event), partitions))
        buffers[slot].append(event)
        if len(buffers[slot]) >= batch_events:
            out[slot[0]].append((slot[1], None, codec.encode_batch(buffers.pop(slot))))
    for (event_type, partition), batch in buffers.items():
        out[event_type].append((partition, None, codec.encode_batch(batch)))
    return out


def load(settings: Settings, events: list[dict[str, Any]], layout: str) -> Loaded:
    """Create five fresh topics and produce `events` onto them in `layout`; wait for every ack."""
    started = time.perf_counter()
    topics = create_ingress_topics(settings, layout)
    records = produce_records(settings, topics, encode_records(events, layout, settings.topic_partitions,
                                                               settings.output_batch_events))
    return Loaded(list(topics.values()), layout, len(events), records, time.perf_counter() - started)


def create_ingress_topics(settings: Settings, layout: str) -> dict[str, str]:
    """Five fresh ingress topics named `bench-<layout>-<random>.<event type>`: event type -> topic."""
    from confluent_kafka.admin import AdminClient, NewTopic

    prefix = f"bench-{layout}-{uuid.uuid4().hex[:8]}"
    topics = {t: f"{prefix}.{t}" for t in EVENT_TYPES}
    admin = AdminClient(settings.kafka_client_config())
    futures = admin.create_topics([NewTopic(name, settings.topic_partitions, 1, config={"retention.ms": "3600000"})
                                   for name in topics.values()])
    for future in futures.values():
        future.result(timeout=30)
    return topics


def produce_records(settings: Settings, topics: dict[str, str],
                    encoded: dict[str, list[tuple[int, bytes | None, bytes]]]) -> int:
    """Produce `encode_records` output onto `topics` (event type -> topic); wait for every ack; the records sent."""
    from confluent_kafka import Producer

    producer = Producer({**settings.kafka_client_config(), "linger.ms": 20, "enable.idempotence": True,
                         "compression.type": "lz4"})
    errors: list[str] = []
    records = 0

    def on_delivery(err, _msg) -> None:
        if err is not None:
            errors.append(str(err))

    for event_type, rows in encoded.items():
        for partition, key, value in rows:
            while True:
                try:
                    producer.produce(topics[event_type], value=value, key=key, partition=partition,
                                     on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            records += 1
    remaining = producer.flush(60)
    if remaining or errors:
        raise RuntimeError(f"loading the bench topics failed: {remaining} undelivered, errors {errors[:3]}")
    return records


class Meter:
    """Counts events; the clock starts at the first one and stops at `expected`."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None

    def add(self, n: int = 1) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.count += n
        self.last = now

    @property
    def done(self) -> bool:
        return self.count >= self.expected

    @property
    def elapsed_s(self) -> float:
        return (self.last - self.first) if self.first is not None and self.last is not None else 0.0

    def result(self, contestant: str, loaded: Loaded, **extra: Any) -> dict[str, Any]:
        elapsed = self.elapsed_s
        return {"contestant": contestant, "layout": loaded.layout, "events": loaded.events,
                "records": loaded.records, "counted": self.count, "elapsed_s": round(elapsed, 3),
                "events_per_s": round(self.count / elapsed, 1) if elapsed > 0 else None, **extra}


def consumer_config(settings: Settings, group: str | None = None) -> dict[str, Any]:
    return {**settings.kafka_client_config(), "group.id": group or f"bench-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "session.timeout.ms": min(settings.kafka_session_timeout_ms, 10_000)}


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def bench_settings(running: bool) -> Iterator[Settings]:
    """Settings of the stack from O2O_* (running=True) or of a private local stack started here."""
    if running:
        yield load_settings(None, kafka_session_timeout_ms=6000)
        return
    from pipeline.stack import LocalStack, StackError

    for attempt in range(3):
        state = Path(tempfile.mkdtemp(prefix="o2o-baselines-"))
        settings = load_settings(None, state_dir=state, kafka_bootstrap_servers=f"127.0.0.1:{_free_port()}",
                                 clickhouse_port=_free_port(), clickhouse_http_port=_free_port(),
                                 kafka_session_timeout_ms=6000)
        stack = LocalStack(settings)
        try:
            stack.up()
            break
        except StackError as exc:
            stack.down()
            # A free port can be taken between picking it and binding it: pick again, twice at most.
            if "already taken" not in str(exc) or attempt == 2:
                raise
    try:
        yield settings
    finally:
        stack.down()


def main(name: str, run: Callable[[Settings, list[dict[str, Any]], str], dict[str, Any]]) -> None:
    """The `__main__` of each baseline: generate, run each layout, print one JSON line per result."""
    parser = argparse.ArgumentParser(description=f"{name} baseline: events/s on the simulator's events")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--layout", choices=(*LAYOUTS, "both"), default="both")
    parser.add_argument("--running", action="store_true",
                        help="use the stack the O2O_* settings point at instead of starting a private one")
    args = parser.parse_args()
    events = generate_events(args.events)
    with bench_settings(args.running) as settings:
        for layout in LAYOUTS if args.layout == "both" else (args.layout,):
            print(json.dumps(run(settings, events, layout)), flush=True)
