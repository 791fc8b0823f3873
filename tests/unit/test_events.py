"""The event model is derived from the Avro schemas and matches the documented contract."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline import events
from pipeline.events import (
    COMMON_FIELDS,
    ENUMS,
    EVENT_KEYS,
    EVENT_TYPES,
    RECORD_NAMES,
    SPECS,
    TYPE_FIELDS,
    format_occurred_at,
    parse_json_line,
    parse_occurred_at,
    to_json_line,
)

ALL_SCHEMAS = (*EVENT_TYPES, "dead_letter")


def test_common_fields_are_the_documented_contract():
    assert COMMON_FIELDS == (
        "event_id", "occurred_at", "channel", "source_id", "member_id", "device_id",
        "wifi_mac_hash", "phone_hash", "store_id", "consent_marketing", "properties",
    )


def test_type_fields_are_the_documented_contract():
    assert TYPE_FIELDS == {
        "browse": ("page", "sku", "category", "search_query", "campaign"),
        "wifi_checkin": ("kind", "ap_id", "rssi"),
        "purchase": ("order_id", "status", "amount_cents", "currency", "items"),
        "share": ("platform", "target"),
        "complaint": ("complaint_id", "category", "severity", "order_id"),
    }


def test_event_keys_start_with_event_type_then_common_then_type_fields():
    for event_type in EVENT_TYPES:
        assert EVENT_KEYS[event_type] == ("event_type", *COMMON_FIELDS, *TYPE_FIELDS[event_type])


@pytest.mark.parametrize(
    "key, symbols",
    [
        (("browse", "channel"), ("app", "web", "mini_program", "wifi", "pos", "call_center", "other")),
        (("wifi_checkin", "kind"), ("probe", "associate", "portal_login", "disassociate")),
        (("purchase", "status"), ("created", "paid", "cancelled", "refunded")),
        (("share", "platform"), ("wechat", "weibo", "qq", "douyin", "other")),
        (("complaint", "category"), ("product_quality", "service", "delivery", "price", "other")),
        (("complaint", "severity"), ("low", "medium", "high")),
    ],
)
def test_enum_vocabularies_come_from_the_schemas(key, symbols):
    assert ENUMS[key] == symbols


def test_channel_vocabulary_is_the_same_for_every_type():
    assert len({ENUMS[(t, "channel")] for t in EVENT_TYPES}) == 1


@pytest.mark.parametrize("name", ALL_SCHEMAS)
def test_every_schema_parses_with_fastavro(name):
    fastavro.parse_schema(events.load_schema(name))


@pytest.mark.parametrize("name", ALL_SCHEMAS)
def test_every_schema_is_in_namespace_o2o_and_declares_a_version(name):
    schema = events.load_schema(name)
    assert schema["namespace"] == "o2o"
    assert events.schema_version(schema) >= 1


@pytest.mark.parametrize("name", ALL_SCHEMAS)
def test_every_field_has_a_doc(name):
    assert all(field.get("doc") for field in events.load_schema(name)["fields"])


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_raw_identifiers_are_optional_with_null_default(event_type):
    specs = {spec.name: spec for spec in SPECS[event_type]}
    for raw in ("wifi_mac", "phone"):
        assert specs[raw].nullable and specs[raw].default is None and not specs[raw].required


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_occurred_at_is_timestamp_millis(event_type):
    (spec,) = [s for s in SPECS[event_type] if s.name == "occurred_at"]
    assert spec.kind == "timestamp_ms" and spec.required


def test_record_names_map_to_event_types():
    assert RECORD_NAMES == {
        "o2o.Browse": "browse",
        "o2o.WifiCheckin": "wifi_checkin",
        "o2o.Purchase": "purchase",
        "o2o.Share": "share",
        "o2o.Complaint": "complaint",
    }


def test_purchase_items_fields_come_from_the_schema():
    (items,) = [s for s in SPECS["purchase"] if s.name == "items"]
    assert [i.name for i in items.items] == ["sku", "quantity", "price_cents"]


def test_history_keeps_version_1_of_every_schema():
    for name in ALL_SCHEMAS:
        assert 1 in events.history_versions(name)


def test_parse_occurred_at_reads_iso_with_offset():
    assert parse_occurred_at("2026-11-22T10:00:00+08:00") == 1_795_312_800_000


def test_parse_occurred_at_reads_iso_with_z():
    assert parse_occurred_at("2026-11-22T02:00:00Z") == 1_795_312_800_000


def test_parse_occurred_at_keeps_milliseconds():
    assert parse_occurred_at("2026-11-22T02:00:00.123Z") == 1_795_312_800_123


def test_parse_occurred_at_passes_epoch_ms_through():
    assert parse_occurred_at(1_795_312_800_000) == 1_795_312_800_000


def test_parse_occurred_at_refuses_naive_iso_and_says_add_an_offset():
    with pytest.raises(ValueError, match="offset"):
        parse_occurred_at("2026-11-22T10:00:00")


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", ""])
def test_parse_occurred_at_refuses_text_that_is_not_iso(value):
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_occurred_at(value)


@pytest.mark.parametrize("value", [1.5e12, True, None, [1]])
def test_parse_occurred_at_refuses_other_types(value):
    with pytest.raises(ValueError, match="epoch milliseconds"):
        parse_occurred_at(value)


def test_format_occurred_at_is_utc_with_milliseconds_and_z():
    assert format_occurred_at(1_795_312_800_007) == "2026-11-22T02:00:00.007Z"


@given(st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999))  # years 1..9999
def test_format_occurred_at_agrees_with_datetime(epoch_ms):
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=epoch_ms)
    assert format_occurred_at(epoch_ms) == moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


@given(st.integers(0, 253_402_300_799_999))
def test_format_then_parse_occurred_at_round_trips(epoch_ms):
    assert parse_occurred_at(format_occurred_at(epoch_ms)) == epoch_ms


def test_to_json_line_leaves_out_nulls_and_empty_defaults():
    event = {key: None for key in EVENT_KEYS["share"]}
    event.update(event_type="share", event_id="s1", occurred_at=0, channel="app", member_id="m",
                 properties={}, platform="qq")
    assert json.loads(to_json_line(event)) == {
        "event_type": "share", "event_id": "s1", "occurred_at": "1970-01-01T00:00:00.000Z",
        "channel": "app", "member_id": "m", "platform": "qq",
    }


def test_to_json_line_keeps_non_ascii_text_readable():
    event = {"event_type": "browse", "event_id": "b", "occurred_at": 0, "channel": "app", "page": "首页"}
    assert "首页" in to_json_line(event)


def test_parse_json_line_returns_the_object():
    assert parse_json_line('{"a": 1}') == {"a": 1}


def test_parse_json_line_accepts_bytes():
    assert parse_json_line(b'{"a": 1}') == {"a": 1}


def test_parse_json_line_refuses_invalid_json_with_the_column():
    with pytest.raises(ValueError, match="column"):
        parse_json_line('{"a": ')


def test_parse_json_line_refuses_a_json_array():
    with pytest.raises(ValueError, match="JSON object"):
        parse_json_line("[1, 2]")


def test_parse_json_line_refuses_bytes_that_are_not_utf8():
    with pytest.raises(ValueError):
        parse_json_line(b"\xff\xfe{")
