"""The `events` rows the sink sends as JSON hold exactly the values of the table's column getters."""

from __future__ import annotations

import copy

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from event_strategies import NOW_MS, raw_events
from pipeline.privacy import IdentifierHasher
from pipeline.serde import EventCodec
from pipeline.validation import validate
from sinks.tables import EVENTS, rows_for
from sinks.writer import event_json_row, event_json_rows, event_rows

CODEC = EventCodec()
HASHER = IdentifierHasher(b"test-secret")
COLUMNS = [c.name for c in EVENTS.insert_columns]


def normalised(raw):
    event = validate(raw, NOW_MS)
    assert isinstance(event, dict), event
    HASHER.hash_identifiers(event)
    return event


def envelope(events, persons, late):
    return {"events": CODEC.encode_accepted(events), "person_ids": persons, "late": late}


@given(st.lists(st.tuples(raw_events(raw_identifiers=False), st.sampled_from(["m:1", "d:2", ""]), st.booleans()),
                min_size=1, max_size=10))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_json_rows_equal_the_native_columns_value_for_value(cases):
    events = [normalised(raw) for raw, _, _ in cases]
    envelopes = [envelope(events, [p for _, p, _ in cases], [late for _, _, late in cases])]

    native = rows_for("events", event_rows(CODEC, copy.deepcopy(envelopes), 1_700_000_000_000))
    sent = event_json_rows(CODEC, envelopes, 1_700_000_000_000)
    rows = orjson.loads(b"[" + sent.body + b"]")

    assert len(sent) == sum(1 for _, person, _ in cases if person)
    # A field absent from a row is a Nullable column's NULL (every other column is always written).
    assert [[row.get(column) for row in rows] for column in COLUMNS] == native
    nullable = {c.name for c in EVENTS.insert_columns if c.type.startswith("Nullable")}
    assert all(column in row for row in rows for column in set(COLUMNS) - nullable)


def test_a_raw_identifier_is_refused():
    event = normalised({"event_type": "browse", "event_id": "b", "occurred_at": NOW_MS, "channel": "app",
                        "device_id": "d"})
    with pytest.raises(ValueError, match="raw identifier"):
        event_json_row(dict(event, phone="+8613800138000"), "d:d", False, 1)
