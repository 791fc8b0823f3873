"""Ingest's o2o.accepted records: grouped by journey partition, bounded by count and by bytes."""

from __future__ import annotations

from agents.ingest import ACCEPTED_RECORD_BYTES, encode_accepted
from pipeline.serde import EventCodec

CODEC = EventCodec()


def browse(i: int, padding: int = 0) -> dict:
    return {"event_id": f"e{i}", "event_type": "browse", "occurred_at": 1_700_000_000_000 + i, "channel": "app",
            "device_id": f"d{i % 7}", "properties": {"pad": "x" * padding}}


def test_every_event_lands_once_in_order_with_its_records_earliest_append():
    events = [browse(i) for i in range(2_500)]
    appended = {e["event_id"]: 1000.0 - i for i, e in enumerate(events)}
    out = list(encode_accepted(CODEC, events, partitions=1, per_record=1_000, appended=appended))
    decoded = [CODEC.decode_accepted(value) for _, value, _ in out]
    assert [len(d) for d in decoded] == [1_000, 1_000, 500]
    assert [e for d in decoded for e in d] == events
    assert [t for _, _, t in out] == [min(appended[e["event_id"]] for e in d) for d in decoded]


def test_records_are_halved_until_they_fit_the_byte_limit():
    events = [browse(i, padding=2_000) for i in range(1_000)]  # about 2 MB as one record
    out = list(encode_accepted(CODEC, events, partitions=1, per_record=1_000,
                               appended={e["event_id"]: 0.0 for e in events}))
    assert len(out) > 1 and all(len(value) <= ACCEPTED_RECORD_BYTES for _, value, _ in out)
    assert [e for _, value, _ in out for e in CODEC.decode_accepted(value)] == events
