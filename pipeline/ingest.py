"""The first hop: decode, validate, hash personal identifiers, deduplicate. Pure; agents call it.

One `IngestStage` per input partition (its deduplicator sees that partition's events). Each input
(a Kafka record value, or one canonical-JSON line) ends in exactly one of three places per event:

    accepted      normalised, hashed, first sighting of its event_id   -> next stage
    duplicates    event_id seen within the dedup window                -> counted only
    dead_letters  rejected, with a reason code and replayable bytes    -> o2o.dlq

so `len(accepted) + len(duplicates) + len(dead_letters)` = events read (a record that cannot be
decoded at all counts as one). Raw MAC addresses and phone numbers never leave this module: they
are hashed before an event is accepted, and a rejected event's replayable bytes are re-encoded
with them hashed (only undecodable bytes, which were already on the ingress topic, stay as sent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.dedup import Deduplicator
from pipeline.privacy import IdentifierHasher
from pipeline.serde import DecodeError, EventCodec
from pipeline.validation import Rejection, ValidationPolicy, validate, validate_json_line

ROUTING_FIELDS = ("member_id", "device_id", "wifi_mac_hash", "phone_hash")


@dataclass(slots=True)
class DeadLetter:
    reason: str
    detail: str
    original: bytes
    event_id: str | None = None
    event_type: str | None = None
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None

    def to_record(self, received_at_ms: int) -> dict[str, Any]:
        """The fields of schemas/dead_letter.avsc."""
        return {
            "reason": self.reason, "detail": self.detail, "event_id": self.event_id,
            "event_type": self.event_type, "source_topic": self.source_topic,
            "source_partition": self.source_partition, "source_offset": self.source_offset,
            "received_at": received_at_ms, "original": self.original,
        }


@dataclass(slots=True)
class IngestResult:
    accepted: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    @property
    def read(self) -> int:
        return len(self.accepted) + len(self.duplicates) + len(self.dead_letters)


def routing_key(event: dict[str, Any]) -> str:
    """The identifier an event is partitioned by downstream: its strongest identifier."""
    for name in ROUTING_FIELDS:
        value = event.get(name)
        if value is not None:
            return value
    raise ValueError(f"event {event.get('event_id')!r} has no identifier; validate it first")


class IngestStage:
    def __init__(self, codec: EventCodec, hasher: IdentifierHasher, policy: ValidationPolicy, dedup: Deduplicator):
        self.codec = codec
        self.hasher = hasher
        self.policy = policy
        self.dedup = dedup

    def ingest_record(
        self, value: bytes | None, now_ms: int, result: IngestResult,
        topic: str | None = None, partition: int | None = None, offset: int | None = None,
    ) -> None:
        """One Kafka record value (one event or a batch) into `result`; a null value is a dead letter."""
        value = value or b""
        try:
            raws = self.codec.decode(value)
        except DecodeError as exc:
            result.dead_letters.append(DeadLetter(exc.reason, exc.detail, bytes(value), source_topic=topic,
                                                  source_partition=partition, source_offset=offset))
            return
        for raw in raws:
            checked = validate(raw, now_ms, self.policy)
            if isinstance(checked, Rejection):
                event_type = raw.get("event_type")
                result.dead_letters.append(DeadLetter(
                    checked.reason, checked.detail, self._replayable(raw, value), checked.event_id,
                    event_type if isinstance(event_type, str) else None, topic, partition, offset))
            else:
                self._accept(checked, result)

    def ingest_json_line(self, line: str | bytes, now_ms: int, result: IngestResult, line_no: int | None = None) -> None:
        """One line of canonical JSON into `result` (the dead letter keeps the line as given)."""
        checked = validate_json_line(line, now_ms, self.policy)
        if isinstance(checked, Rejection):
            original = line.encode() if isinstance(line, str) else bytes(line)
            result.dead_letters.append(
                DeadLetter(checked.reason, checked.detail, original, checked.event_id, source_offset=line_no)
            )
        else:
            self._accept(checked, result)

    def _accept(self, event: dict[str, Any], result: IngestResult) -> None:
        self.hasher.hash_identifiers(event)
        if self.dedup.is_duplicate(event["event_id"], event["occurred_at"]):
            result.duplicates.append(event)
        else:
            result.accepted.append(event)

    def _replayable(self, raw: dict[str, Any], value: bytes) -> bytes:
        """The rejected event alone, re-encoded with raw identifiers hashed, so a replay sends just it."""
        copy = dict(raw)
        try:
            self.hasher.hash_identifiers(copy)
        except ValueError:
            pass  # an unreadable raw value is dropped by hash_identifiers before it raises
        try:
            return self.codec.encode(copy)
        except ValueError:
            has_raw = raw.get("wifi_mac") is not None or raw.get("phone") is not None
            return b"" if has_raw else bytes(value)
