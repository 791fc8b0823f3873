"""Confluent-framed Avro: stable ids, single and batch records, fast int timestamps, one error type."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from event_strategies import NOW_MS, raw_events
from pipeline.events import EVENT_TYPES, load_schema
from pipeline.privacy import IdentifierHasher
from pipeline.serde import (
    DecodeError,
    EmbeddedRegistry,
    EventCodec,
    RegisteredSchema,
    batch_schema,
    frame,
    schema_id_for,
    strip_timestamp_logical_types,
    unframe,
)
from pipeline.validation import validate

HASHER = IdentifierHasher(b"test-secret")
CODEC = EventCodec()


def normalised(raw):
    event = validate(raw, NOW_MS)
    assert isinstance(event, dict), event
    HASHER.hash_identifiers(event)
    return event


def sample(event_type: str, **fields):
    raw = {"event_type": event_type, "event_id": f"{event_type}-1", "occurred_at": NOW_MS, "channel": "app",
           "member_id": "m-1", "store_id": "s-1"}
    raw.update({
        "browse": {"page": "/p/1", "properties": {"utm_source": "wechat"}},
        "wifi_checkin": {"kind": "associate", "rssi": -61, "wifi_mac": "aa:bb:cc:00:11:22"},
        "purchase": {"order_id": "o-1", "status": "paid", "amount_cents": 2400, "currency": "CNY",
                     "items": [{"sku": "a", "quantity": 2, "price_cents": 1200}]},
        "share": {"platform": "douyin", "target": "sku-1"},
        "complaint": {"category": "delivery", "severity": "high", "order_id": "o-1"},
    }[event_type])
    raw.update(fields)
    return normalised(raw)


# --- ids ----------------------------------------------------------------------------------------

def test_embedded_ids_are_pinned():
    assert {r.subject: r.schema_id for r in EmbeddedRegistry().all()} == {
        "o2o.Browse": 101, "o2o.BrowseBatch": 151,
        "o2o.WifiCheckin": 201, "o2o.WifiCheckinBatch": 251,
        "o2o.Purchase": 301, "o2o.PurchaseBatch": 351,
        "o2o.Share": 401, "o2o.ShareBatch": 451,
        "o2o.Complaint": 501, "o2o.ComplaintBatch": 551,
        "o2o.DeadLetter": 901,
        "o2o.SessionUpdate": 1001, "o2o.SessionUpdateBatch": 1051,
        "o2o.VisitUpdate": 1101, "o2o.VisitUpdateBatch": 1151,
        "o2o.PersonMerge": 1201, "o2o.PersonMergeBatch": 1251,
        "o2o.Trigger": 1301, "o2o.TriggerBatch": 1351,
        "o2o.TriggerDecision": 1401, "o2o.TriggerDecisionBatch": 1451,
        "o2o.ResolvedEvents": 1501, "o2o.ResolvedEventsBatch": 1551,
    }


def test_a_trigger_round_trips_as_a_single_record_with_its_payload_branch():
    codec = EventCodec()
    record = {"trigger_id": "t1", "rule": "coupon", "rule_type": "browse_then_visit", "kind": "marketing",
              "person_id": "m:42", "member_id": "42", "store_id": "s1", "event_time": 1, "fired_at": 2,
              "cause_event_ids": ["e1", "e2"], "published_at": 3,
              "payload": ("o2o.BrowseThenVisitPayload",
                          {"store_id": "s1", "skus": ["sku-1"], "arrival": "visitor", "visit_id": "v1"})}
    name, decoded = codec.decode_output(codec.encode_output("trigger", record))
    assert name == "trigger"
    assert decoded == {**record, "payload": record["payload"][1]}
    with pytest.raises(DecodeError, match="not a batch"):
        codec.decode_outputs(codec.encode_output("trigger", record))


def test_outputs_round_trip_as_batches_and_are_not_events():
    codec = EventCodec()
    merge = {"from_person": "d:tablet", "to_person": "m:42", "at": 1_795_312_800_000, "event_id": "e4"}
    value = codec.encode_outputs("person_merge", [merge, merge])

    assert codec.decode_outputs(value) == ("person_merge", [merge, merge])
    with pytest.raises(DecodeError):
        codec.decode(value)


def test_schema_id_rule_for_a_later_version():
    assert schema_id_for("purchase", 2) == 302 and schema_id_for("purchase", 2, batch=True) == 352


@pytest.mark.parametrize("version", [0, 50])
def test_schema_id_rule_refuses_versions_outside_1_to_49(version):
    with pytest.raises(ValueError, match=str(version)):
        schema_id_for("browse", version)


def test_batch_schema_wraps_the_event_record_in_an_events_array():
    schema = batch_schema(load_schema("share"))
    assert schema["name"] == "ShareBatch" and schema["fields"][0]["type"]["items"]["name"] == "Share"


def test_registry_latest_returns_the_current_version():
    assert EmbeddedRegistry().latest("o2o.Browse").version == 1


def test_registry_raises_key_error_for_unknown_ids_and_subjects():
    registry = EmbeddedRegistry()
    with pytest.raises(KeyError):
        registry.by_id(999)
    with pytest.raises(KeyError):
        registry.latest("o2o.Nope")


# --- framing ------------------------------------------------------------------------------------

def test_frame_is_magic_byte_then_big_endian_id_then_body():
    assert frame(258, b"xyz") == b"\x00\x00\x00\x01\x02xyz"


def test_unframe_reads_id_and_body():
    schema_id, body = unframe(b"\x00\x00\x00\x00\x65abc")
    assert schema_id == 101 and bytes(body) == b"abc"


def test_encoded_record_starts_with_the_current_schema_id():
    assert CODEC.encode(sample("purchase"))[:5] == b"\x00\x00\x00\x01\x2d"


def test_encoded_batch_starts_with_the_batch_schema_id():
    assert CODEC.encode_batch([sample("share")])[:5] == frame(451, b"")


# --- round trips --------------------------------------------------------------------------------

@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_single_event_round_trips_as_a_one_element_list(event_type):
    event = sample(event_type)
    assert CODEC.decode(CODEC.encode(event)) == [event]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_batch_round_trips_in_order(event_type):
    events = [sample(event_type, event_id=f"e-{i}") for i in range(5)]
    assert CODEC.decode(CODEC.encode_batch(events)) == events


def test_decoded_occurred_at_is_an_int():
    (event,) = CODEC.decode(CODEC.encode(sample("browse")))
    assert type(event["occurred_at"]) is int and event["occurred_at"] == NOW_MS


def test_decoded_event_carries_event_type_and_no_raw_keys():
    (event,) = CODEC.decode(CODEC.encode(sample("wifi_checkin")))
    assert event["event_type"] == "wifi_checkin" and "wifi_mac" not in event and "phone" not in event


def test_bytes_are_readable_with_the_schema_as_published_timestamp_logical_type_included():
    data = CODEC.encode(sample("browse"))
    published = fastavro.parse_schema(load_schema("browse"))
    record = fastavro.schemaless_reader(io.BytesIO(data[5:]), published)
    assert record["occurred_at"] == datetime(2026, 11, 22, 2, 0, tzinfo=timezone.utc)


def test_decode_accepts_bytearray_and_memoryview():
    data = CODEC.encode(sample("share"))
    assert CODEC.decode(bytearray(data)) == CODEC.decode(memoryview(data)) == CODEC.decode(data)


@given(st.lists(raw_events(raw_identifiers=False), min_size=1, max_size=5))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_generated_events_round_trip_singly_and_in_batches(raws):
    events = [normalised(raw) for raw in raws]
    for event in events:
        assert CODEC.decode(CODEC.encode(event)) == [event]
    same_type = [e for e in events if e["event_type"] == events[0]["event_type"]]
    assert CODEC.decode(CODEC.encode_batch(same_type)) == same_type


@given(st.lists(raw_events(raw_identifiers=False), min_size=1, max_size=8))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_accepted_records_round_trip_mixed_types_as_the_avro_records_would(raws):
    events = [normalised(raw) for raw in raws]
    assert CODEC.decode_accepted(CODEC.encode_accepted(events)) == events
    for event in events:
        assert CODEC.decode_accepted(CODEC.encode(event)) == [event]  # Avro, as older workers wrote


@pytest.mark.parametrize("value", [b"", b"\x01junk", b"{}", b'{"events": []}', b"[1, 2]", b'[{"event_id": "x"}]'])
def test_an_accepted_record_that_is_no_json_array_of_events_is_malformed(value):
    with pytest.raises(DecodeError) as raised:
        CODEC.decode_accepted(value)
    assert raised.value.reason == "malformed"


def test_encode_accepted_refuses_an_event_with_a_raw_mac():
    with pytest.raises(ValueError, match="raw 'wifi_mac'"):
        CODEC.encode_accepted([dict(sample("wifi_checkin"), wifi_mac="aa:bb:cc:00:11:22")])


# --- raw identifiers ----------------------------------------------------------------------------

def test_encode_refuses_an_event_with_a_raw_mac():
    event = validate({"event_type": "browse", "event_id": "b", "occurred_at": NOW_MS, "channel": "app",
                      "wifi_mac": "aa:bb:cc:00:11:22"}, NOW_MS)
    with pytest.raises(ValueError, match="raw 'wifi_mac'"):
        CODEC.encode(event)


def test_encode_batch_refuses_an_event_with_a_raw_phone():
    event = dict(sample("browse"), phone="+8613800138000")
    with pytest.raises(ValueError, match="raw 'phone'"):
        CODEC.encode_batch([event])


def test_foreign_producer_raw_identifiers_survive_encoding_for_the_ingest_agent():
    event = dict(sample("browse"), wifi_mac="aabbcc001122")
    (decoded,) = CODEC.decode(CODEC.encode(event, allow_raw_identifiers=True))
    assert decoded["wifi_mac"] == "aabbcc001122"


# --- encode errors ------------------------------------------------------------------------------

def test_encode_batch_refuses_mixed_types():
    with pytest.raises(ValueError, match="one type"):
        CODEC.encode_batch([sample("browse"), sample("share")])


def test_encode_batch_refuses_an_empty_list():
    with pytest.raises(ValueError, match="at least one"):
        CODEC.encode_batch([])


def test_encode_refuses_unknown_event_type():
    with pytest.raises(ValueError, match="event_type"):
        CODEC.encode({"event_type": "dead_letter"})


def test_encode_of_an_unvalidated_event_says_validate_first():
    with pytest.raises(ValueError, match="validate"):
        CODEC.encode({"event_type": "purchase", "event_id": "p"})


# --- decode errors ------------------------------------------------------------------------------

def _malformed(data) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        CODEC.decode(data)
    assert info.value.reason == "malformed"
    return info.value


def test_empty_value_is_malformed():
    assert "5-byte" in _malformed(b"").detail


def test_wrong_magic_byte_is_malformed():
    assert "magic byte" in _malformed(b"{" + CODEC.encode(sample("browse"))[1:]).detail


def test_unknown_schema_id_is_malformed_naming_it():
    assert "777" in _malformed(frame(777, b"\x02a")).detail


def test_truncated_body_is_malformed():
    data = CODEC.encode(sample("purchase"))
    for cut in range(5, len(data)):
        _malformed(data[:cut])


def test_trailing_bytes_are_malformed():
    assert "left after" in _malformed(CODEC.encode(sample("share")) + b"\x00").detail


def test_dead_letter_id_is_not_decoded_as_an_event():
    _malformed(CODEC.encode_dead_letter(_dead_letter()))


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_random_bytes_never_raise_anything_but_decode_error(data):
    try:
        CODEC.decode(data)
    except DecodeError as error:
        assert error.reason == "malformed"


@given(st.sampled_from([101, 151, 201, 251, 301, 351, 401, 451, 501, 551]), st.binary(max_size=300))
@settings(max_examples=1000)
def test_random_body_under_a_known_id_decodes_or_raises_decode_error(schema_id, body):
    try:
        events = CODEC.decode(frame(schema_id, body))
    except DecodeError:
        return
    assert isinstance(events, list)


# --- dead letters -------------------------------------------------------------------------------

def _dead_letter():
    return {"reason": "schema", "detail": "channel 'tv' is not one of ...", "event_id": "e-1", "event_type": "browse",
            "source_topic": "o2o.browse", "source_partition": 3, "source_offset": 42, "received_at": NOW_MS,
            "original": b'{"event_type": "browse"}'}


def test_dead_letter_round_trips_with_id_901():
    data = CODEC.encode_dead_letter(_dead_letter())
    assert data[:5] == frame(901, b"") and CODEC.decode_dead_letter(data) == _dead_letter()


def test_event_record_is_not_decoded_as_a_dead_letter():
    with pytest.raises(DecodeError):
        CODEC.decode_dead_letter(CODEC.encode(sample("browse")))


# --- another registry, older writer version -----------------------------------------------------

class TwoVersionRegistry:
    """A RegistryClient whose browse v2 adds a field with a default; v1 bytes must still decode."""

    def __init__(self) -> None:
        v1 = load_schema("browse")
        v2 = dict(v1, o2o_version=2, fields=[*v1["fields"], {"name": "referrer", "type": ["null", "string"],
                                                                "default": None, "doc": "new in v2"}])
        self.v1 = RegisteredSchema(1001, "o2o.Browse", 1, v1)
        self.v2 = RegisteredSchema(1002, "o2o.Browse", 2, v2)

    def by_id(self, schema_id):
        return {1001: self.v1, 1002: self.v2}[schema_id]

    def latest(self, subject):
        if subject != "o2o.Browse":
            raise KeyError(subject)
        return self.v2


def test_record_written_with_an_older_version_decodes_into_the_current_shape():
    event = sample("browse")
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(strip_timestamp_logical_types(load_schema("browse"))), event)
    (decoded,) = EventCodec(TwoVersionRegistry()).decode(frame(1001, body.getvalue()))
    assert decoded == dict(event, referrer=None)


def test_codec_encodes_with_the_registrys_latest_id():
    assert EventCodec(TwoVersionRegistry()).encode(dict(sample("browse"), referrer="x"))[:5] == frame(1002, b"")
