"""The producer SDK for integrators: events in, Avro batches on the ingress topics out.

    from pipeline.config import load_settings
    from pipeline.producer import EventProducer

    with EventProducer(load_settings()) as producer:
        rejection = producer.send({
            "event_id": "app-7f3a", "event_type": "browse", "occurred_at": "2026-11-22T10:00:00+08:00",
            "channel": "app", "member_id": "m-1001", "sku": "sku-42", "phone": "+86 138 0013 8000",
        })
        if rejection:                       # checked locally, nothing sent
            print(rejection.reason, rejection.detail)
    print(producer.stats)                   # closing flushed everything; stats count delivered events

What it does per event: validates (the same rules as the ingest agent), replaces a raw `wifi_mac` or
`phone` by its keyed hash, and buffers it by (type, partition); a buffer becomes one batch record
when it holds `output_batch_events` events or is older than `linger_ms`. Records go out with
confluent-kafka's idempotent producer; delivery reports are counted in `stats`. The buffer is
bounded: `send` blocks (serving delivery reports) while librdkafka's queue is full.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from confluent_kafka import KafkaException, Producer

from pipeline.config import Settings
from pipeline.ingest import routing_key
from pipeline.privacy import IdentifierHasher
from pipeline.serde import EventCodec, registry_from_settings
from pipeline.topics import ingress_topics, partition_for
from pipeline.validation import Rejection, validate

# Called once per batch record with (error text or None, how many of this caller's events it held).
DeliveryCallback = Callable[[str | None, int], None]


@dataclass
class ProducerStats:
    accepted: int = 0                    # validated and handed to Kafka
    delivered: int = 0                   # acknowledged by the broker
    failed: int = 0                      # delivery failed after librdkafka's retries
    rejected: Counter = field(default_factory=Counter)  # reason code -> count, checked locally
    errors: list[str] = field(default_factory=list)     # first few delivery errors, for the user

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "delivered": self.delivered, "failed": self.failed,
                "rejected": dict(self.rejected), "errors": self.errors}


class EventProducer:
    def __init__(
        self,
        settings: Settings,
        *,
        batch_events: int | None = None,
        linger_ms: int = 50,
        max_buffered_records: int = 10_000,
        topic: str | None = None,
        now_ms=lambda: int(time.time() * 1000),
    ) -> None:
        self.settings = settings
        self.batch_events = batch_events or settings.output_batch_events
        self.linger_ms = linger_ms
        self.policy = settings.validation_policy()
        self.codec = EventCodec(registry_from_settings(settings))
        self.hasher = IdentifierHasher(settings.effective_hash_secret)
        self.now_ms = now_ms
        self.topics = {t: topic for t in ingress_topics(settings)} if topic else ingress_topics(settings)
        self.stats = ProducerStats()
        self._producer = Producer({
            **settings.kafka_client_config(),
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": "lz4",
            "queue.buffering.max.messages": max_buffered_records,
        })
        self._partitions = self._partition_counts()
        self._buffers: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self._oldest_ms: dict[tuple[str, int], float] = {}
        self._callbacks: dict[tuple[str, int], list[DeliveryCallback]] = {}

    def _partition_counts(self) -> dict[str, int]:
        wanted = set(self.topics.values())
        try:
            metadata = self._producer.list_topics(timeout=10)
        except KafkaException as exc:
            raise ConnectionError(
                f"cannot reach Kafka at {self.settings.kafka_bootstrap_servers}: {exc.args[0].str()}; "
                "is the broker up (`o2o stack up`) and are the topics created (`o2o init`)?"
            ) from None
        missing = sorted(t for t in wanted if t not in metadata.topics)
        if missing:
            raise ConnectionError(f"topics missing on the broker: {', '.join(missing)}; run `o2o init` first")
        return {t: len(metadata.topics[t].partitions) for t in wanted}

    # --- sending -------------------------------------------------------------------------------

    def send(self, raw: dict[str, Any], on_delivery: DeliveryCallback | None = None) -> Rejection | None:
        """Validate, hash and buffer one event; a Rejection means it was not sent (and why).

        `on_delivery(error, count)` runs (from `poll`/`flush`) when the record holding the event is
        acknowledged or has failed; events of one caller in one record are reported together.
        """
        checked = validate(raw, self.now_ms(), self.policy)
        if type(checked) is Rejection:
            self.stats.rejected[checked.reason] += 1
            return checked
        self.hasher.hash_identifiers(checked)
        topic = self.topics[checked["event_type"]]
        slot = (checked["event_type"], partition_for(routing_key(checked), self._partitions[topic]))
        buffer = self._buffers.setdefault(slot, [])
        if not buffer:
            self._oldest_ms[slot] = time.monotonic() * 1000
        buffer.append(checked)
        if on_delivery is not None:
            self._callbacks.setdefault(slot, []).append(on_delivery)
        self.stats.accepted += 1
        if len(buffer) >= self.batch_events:
            self._send_buffer(slot)
        else:
            self._send_lingering()
        return None

    def send_many(self, events: Iterable[dict[str, Any]]) -> list[Rejection]:
        return [r for r in (self.send(e) for e in events) if r is not None]

    def flush(self, timeout_s: float = 30.0) -> int:
        """Send every buffer and wait for delivery; returns records still undelivered (0 is success)."""
        for slot in list(self._buffers):
            self._send_buffer(slot)
        return self._producer.flush(timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        remaining = self.flush(timeout_s)
        if remaining:
            self.stats.errors.append(f"{remaining} records undelivered after {timeout_s:.0f} s")

    def __enter__(self) -> "EventProducer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve delivery reports (send and flush do this; call it when idle for long)."""
        self._producer.poll(timeout_s)
        self._send_lingering()

    # --- internals -----------------------------------------------------------------------------

    def _send_lingering(self) -> None:
        now = time.monotonic() * 1000
        for slot, since in list(self._oldest_ms.items()):
            if now - since >= self.linger_ms:
                self._send_buffer(slot)

    def _send_buffer(self, slot: tuple[str, int]) -> None:
        events = self._buffers.pop(slot, None)
        self._oldest_ms.pop(slot, None)
        if not events:
            return
        event_type, partition = slot
        value = self.codec.encode_batch(events)
        count = len(events)
        callbacks = Counter(self._callbacks.pop(slot, ()))

        def on_delivery(err, _msg, count=count):
            if err is None:
                self.stats.delivered += count
            else:
                self.stats.failed += count
                if len(self.stats.errors) < 5:
                    self.stats.errors.append(str(err))
            for callback, events_of_caller in callbacks.items():
                callback(None if err is None else str(err), events_of_caller)

        while True:
            try:
                self._producer.produce(self.topics[event_type], value=value, partition=partition,
                                       on_delivery=on_delivery)
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)


def send_jsonl(producer: EventProducer, lines: Iterable[str | bytes], on_reject, on_line=lambda _line: None) -> int:
    """Send canonical-JSON lines; `on_reject(line_no, line, rejection)` gets every line not sent.

    Blank lines are skipped. Returns the number of non-blank lines read.
    """
    from pipeline.events import parse_json_line
    from pipeline.validation import MALFORMED

    read = 0
    for line_no, line in enumerate(lines, start=1):
        on_line(line)
        if not line.strip():
            continue
        read += 1
        try:
            raw = parse_json_line(line)
        except ValueError as exc:
            producer.stats.rejected[MALFORMED] += 1
            on_reject(line_no, line, Rejection(MALFORMED, str(exc)))
            continue
        rejection = producer.send(raw)
        if rejection is not None:
            on_reject(line_no, line, rejection)
    return read
