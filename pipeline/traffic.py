"""`o2o simulate`'s I/O edge: simulated records to a JSONL file, or to Kafka at a paced rate.

Good events go through the producer SDK (`EventProducer.send`), exactly as an integrator's do:
validated, identifiers hashed, batched per type and partition. Deliberately bad records cannot
take that path (the SDK would refuse them locally and nothing would reach the dead-letter topic),
so they are written the way a broken foreign producer writes them: straight onto their type's
ingress topic, one per record, Avro-encoded when the schema can carry the fault (no identifier,
bad values, a future clock) and as raw JSON bytes otherwise (the agent dead-letters those as
`malformed`). The workers then reject every one of them with a reason.

The simulated clock is placed in the past so the run ends before "now": `plan_start_ms` measures
one round of the mix and starts early enough for the events the run will send (the validation
rejects timestamps more than a few minutes ahead of the wall clock).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterable, Iterator, TextIO

from pipeline.simulate import MINUTE, Mix, Record, Simulation, round_span_ms

ENCODABLE_FAULTS = ("no_identity", "invalid_value", "future_timestamp")
SDK_EVENTS_PER_S_BOUND = 60_000  # above what the SDK sends on one core: a safe guess for unpaced runs
_ESTIMATE_PERSONS = 20_000


def mix_from_settings(settings: Any, **overrides: Any) -> Mix:
    """A Mix from `simulate_*` settings (unset ones keep Mix's defaults) and flag overrides (None: unset)."""
    values = {}
    for f in fields(Mix):
        value = overrides.get(f.name)
        if value is None:
            value = getattr(settings, f"simulate_{f.name}", None)
        if value is not None:
            values[f.name] = value
    return Mix(**values)


def plan_start_ms(seed: int, mix: Mix, events: int, now_ms: int) -> int:
    """A start, on a whole minute, such that the first `events` records all lie before `now_ms`."""
    sample = mix if mix.persons <= _ESTIMATE_PERSONS else Mix(**{**_as_dict(mix), "persons": _ESTIMATE_PERSONS})
    per_round = sum(1 for _ in Simulation(seed, 0, sample).records(rounds=1)) * mix.persons / sample.persons
    rounds = math.ceil(events / max(per_round, 1.0)) + 1  # one round of margin: rounds vary a little
    span = (rounds - 1) * mix.round_minutes * MINUTE + round_span_ms(mix)
    return (now_ms - span - 5 * MINUTE) // MINUTE * MINUTE


def _as_dict(mix: Mix) -> dict[str, Any]:
    return {f.name: getattr(mix, f.name) for f in fields(mix)}


@dataclass
class TrafficSummary:
    records: int = 0
    good: int = 0
    late: int = 0
    bad: Counter = field(default_factory=Counter)           # expected reason code -> records
    by_type: Counter = field(default_factory=Counter)       # event type -> good events
    elapsed_s: float = 0.0
    first_event_ms: int | None = None
    last_event_ms: int | None = None
    destination: str = ""
    delivered: int | None = None                            # Kafka only: good events acknowledged
    rejected: dict[str, int] = field(default_factory=dict)  # Kafka only: good events the SDK refused
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def count(self, record: Record) -> None:
        self.records += 1
        if record.bad:
            self.bad[record.bad] += 1
            return
        self.good += 1
        self.late += record.late
        self.by_type[record.value["event_type"]] += 1  # type: ignore[index]
        at = record.value["occurred_at"]  # type: ignore[index]
        if self.first_event_ms is None or at < self.first_event_ms:
            self.first_event_ms = at
        if self.last_event_ms is None or at > self.last_event_ms:
            self.last_event_ms = at

    @property
    def events_per_s(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"records": self.records, "good": self.good, "bad": sum(self.bad.values()),
                "bad_by_reason": dict(sorted(self.bad.items())), "late": self.late,
                "by_type": dict(sorted(self.by_type.items())), "elapsed_s": round(self.elapsed_s, 3),
                "events_per_s": round(self.events_per_s, 1), "first_event_ms": self.first_event_ms,
                "last_event_ms": self.last_event_ms, "destination": self.destination,
                "delivered": self.delivered, "rejected": self.rejected, "failed": self.failed,
                "errors": self.errors}


def bounded(records: Iterable[Record], events: int | None, duration_s: float | None,
            clock: Callable[[], float] = time.monotonic) -> Iterator[Record]:
    """At most `events` records, and none after `duration_s` of wall time from the first."""
    deadline = None if duration_s is None else clock() + duration_s
    for n, record in enumerate(records):
        if events is not None and n >= events:
            return
        if deadline is not None and clock() >= deadline:
            return
        yield record


def write_jsonl(records: Iterable[Record], out: TextIO,
                on_progress: Callable[[TrafficSummary], None] = lambda _s: None) -> TrafficSummary:
    summary = TrafficSummary()
    started = time.perf_counter()
    for record in records:
        out.write(record.json_line())
        out.write("\n")
        summary.count(record)
        if summary.records % 5000 == 0:
            summary.elapsed_s = time.perf_counter() - started
            on_progress(summary)
    summary.elapsed_s = time.perf_counter() - started
    on_progress(summary)
    return summary


def produce(settings: Any, records: Iterable[Record], rate: float,
            on_progress: Callable[[TrafficSummary], None] = lambda _s: None) -> TrafficSummary:
    """Send records to the ingress topics, `rate` per second (0: as fast as possible)."""
    from confluent_kafka import Producer

    from pipeline.producer import EventProducer
    from pipeline.serde import EventCodec, registry_from_settings
    from pipeline.topics import ingress_topics

    topics = ingress_topics(settings)
    summary = TrafficSummary(destination=", ".join(topics.values()))
    codec = EventCodec(registry_from_settings(settings))
    raw = Producer({**settings.kafka_client_config(), "linger.ms": 20})
    bad_errors: list[str] = []
    interval = 1.0 / rate if rate > 0 else 0.0
    with EventProducer(settings) as producer:
        started = time.perf_counter()
        last_report = started
        for record in records:
            if interval:
                ahead = started + summary.records * interval - time.perf_counter()
                if ahead > 0.002:
                    producer.poll(ahead)  # serve delivery reports and lingering batches meanwhile
            summary.count(record)
            if record.bad:
                topic = topics[record.event_type or "browse"]
                _produce_raw(raw, topic, foreign_bytes(codec, record), bad_errors)
            else:
                rejection = producer.send(record.value)  # type: ignore[arg-type]
                if rejection is not None and len(summary.errors) < 5:
                    summary.errors.append(f"{record.value['event_id']}: {rejection.reason}: {rejection.detail}")
            now = time.perf_counter()
            if now - last_report >= 0.2:
                last_report = now
                summary.elapsed_s = now - started
                on_progress(summary)
        if raw.flush(30):
            bad_errors.append("bad records undelivered after 30 s")
        producer.flush()
        summary.elapsed_s = time.perf_counter() - started
    stats = producer.stats
    summary.delivered, summary.failed = stats.delivered, stats.failed + len(bad_errors)
    summary.rejected = dict(stats.rejected)
    summary.errors += stats.errors + bad_errors[:5]
    on_progress(summary)
    return summary


def foreign_bytes(codec: Any, record: Record) -> bytes:
    """A bad record as a foreign producer sends it: Avro when the schema can carry the fault, else text."""
    value = record.value
    if type(value) is dict and record.bad in ENCODABLE_FAULTS:
        from pipeline.events import SPECS

        full = {spec.name: spec.default for spec in SPECS[value["event_type"]]}
        full.update(value)
        try:
            return codec.encode(full, allow_raw_identifiers=True)
        except ValueError:
            pass
    return record.json_line().encode()


def _produce_raw(producer: Any, topic: str, value: bytes, errors: list[str]) -> None:
    def on_delivery(err, _msg):
        if err is not None:
            errors.append(str(err))

    while True:
        try:
            producer.produce(topic, value=value, on_delivery=on_delivery)
            break
        except BufferError:
            producer.poll(0.05)
    producer.poll(0)
