"""IngestStage: Kafka record values and JSON lines -> accepted, duplicate and dead-lettered events."""

from __future__ import annotations

from pipeline.config import load_settings
from pipeline.events import to_json_line
from pipeline.ingest import IngestResult, IngestStage
from pipeline.privacy import IdentifierHasher
from pipeline.serde import EventCodec

NOW_MS = 1_795_305_600_000
CODEC = EventCodec()


def stage() -> IngestStage:
    settings = load_settings(None)
    return IngestStage(CODEC, IdentifierHasher(settings.effective_hash_secret), settings.validation_policy(),
                       settings.new_deduplicator())


def browse(event_id: str, **fields) -> dict:
    return {"event_id": event_id, "event_type": "browse", "occurred_at": NOW_MS - 60_000, "channel": "app",
            "device_id": "ipad-7", **fields}


def test_a_null_record_value_is_a_dead_letter_with_where_it_came_from():
    result = IngestResult()
    stage().ingest_record(None, NOW_MS, result, "o2o.ingress.browse", 2, 41)
    [dead] = result.dead_letters
    assert (dead.reason, dead.original, dead.source_topic, dead.source_partition, dead.source_offset) == (
        "malformed", b"", "o2o.ingress.browse", 2, 41)
    assert "0 bytes" in dead.detail and not result.accepted


def test_a_batch_record_keeps_its_good_events_and_dead_letters_the_bad_one_alone():
    future = browse("e2", occurred_at=NOW_MS + 3_600_000)
    result = IngestResult()
    stage().ingest_record(CODEC.encode_batch([browse("e1"), future, browse("e3")]), NOW_MS, result, "t", 0, 7)
    assert [e["event_id"] for e in result.accepted] == ["e1", "e3"]
    [dead] = result.dead_letters
    assert (dead.reason, dead.event_id, dead.event_type, dead.source_topic, dead.source_partition,
            dead.source_offset) == ("future_timestamp", "e2", "browse", "t", 0, 7)
    assert [e["event_id"] for e in CODEC.decode(dead.original)] == ["e2"]  # replayable on its own


def test_a_redelivered_event_is_a_duplicate_not_accepted_twice():
    result = IngestResult()
    ingest = stage()
    line = to_json_line(browse("e1"))
    ingest.ingest_json_line(line, NOW_MS, result, 1)
    ingest.ingest_json_line(line, NOW_MS, result, 2)
    assert [e["event_id"] for e in result.accepted] == ["e1"]
    assert [e["event_id"] for e in result.duplicates] == ["e1"]


def test_json_integers_beyond_64_bits_are_invalid_values_not_wrong_types():
    result = IngestResult()
    stage().ingest_json_line('{"event_id": "e1", "event_type": "browse", "occurred_at": 123456789012345678901234567890, '
                             '"channel": "app", "device_id": "d"}', NOW_MS, result, 1)
    [dead] = result.dead_letters
    assert (dead.reason, dead.detail) == ("invalid_value", "occurred_at is beyond the range of epoch milliseconds")


def test_nan_is_not_json():
    result = IngestResult()
    stage().ingest_json_line('{"event_id": "e1", "event_type": "browse", "occurred_at": NaN, "channel": "app", '
                             '"device_id": "d"}', NOW_MS, result, 1)
    [dead] = result.dead_letters
    assert dead.reason == "malformed" and dead.detail.startswith("not valid JSON")
