"""validate(): normalised events out, one reason code per rejection, details a developer can act on."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from event_strategies import NOW_MS, macs, phones, raw_events
from pipeline.events import EVENT_KEYS, EVENT_TYPES, load_schema, to_json_line
from pipeline.validation import (
    FUTURE_TIMESTAMP,
    INVALID_VALUE,
    MALFORMED,
    NO_IDENTITY,
    REASON_CODES,
    SCHEMA,
    Rejection,
    ValidationPolicy,
    validate,
    validate_json_line,
)

HASH = "ab" * 32


def base(event_type: str, /, **fields):
    """A minimal valid raw event of `event_type`, with `fields` overriding or adding keys."""
    event = {"event_type": event_type, "event_id": "e-1", "occurred_at": NOW_MS, "channel": "app", "member_id": "m-1"}
    event.update(
        {
            "browse": {},
            "wifi_checkin": {"channel": "wifi", "kind": "associate", "store_id": "s-1"},
            "purchase": {"order_id": "o-1", "status": "paid", "amount_cents": 1200},
            "share": {"platform": "wechat"},
            "complaint": {"category": "service", "severity": "high"},
        }[event_type]
    )
    event.update(fields)
    return {k: v for k, v in event.items() if v is not _DROP}


_DROP = object()


def rejected(raw, reason, now_ms=NOW_MS, policy=ValidationPolicy()):
    result = validate(raw, now_ms, policy)
    assert isinstance(result, Rejection), f"expected a {reason} rejection, got {result}"
    assert result.reason == reason, result
    return result


# --- vocabulary ---------------------------------------------------------------------------------

def test_reason_codes_are_exactly_the_five():
    assert REASON_CODES == ("malformed", "schema", "no_identity", "future_timestamp", "invalid_value")


def test_reason_codes_match_the_dead_letter_schema_enum():
    (reason,) = [f for f in load_schema("dead_letter")["fields"] if f["name"] == "reason"]
    assert tuple(reason["type"]["symbols"]) == REASON_CODES


# --- accepted input -----------------------------------------------------------------------------

@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_minimal_event_of_each_type_has_all_keys_with_defaults(event_type):
    event = validate(base(event_type), NOW_MS)
    assert tuple(event) == EVENT_KEYS[event_type]
    assert event["properties"] == {}
    assert event["source_id"] is None and event["consent_marketing"] is None


def test_purchase_items_default_to_an_empty_list():
    assert validate(base("purchase"), NOW_MS)["items"] == []


def test_iso_occurred_at_with_offset_becomes_epoch_ms():
    assert validate(base("browse", occurred_at="2026-11-22T10:00:00+08:00"), NOW_MS)["occurred_at"] == NOW_MS


def test_iso_occurred_at_with_z_becomes_epoch_ms():
    assert validate(base("browse", occurred_at="2026-11-22T02:00:00Z"), NOW_MS)["occurred_at"] == NOW_MS


def test_validate_does_not_modify_its_input():
    raw = base("purchase", occurred_at="2026-11-22T02:00:00Z", currency="cny", wifi_mac="AA-BB-CC-00-11-22")
    before = json.dumps(raw, sort_keys=True)
    validate(raw, NOW_MS)
    assert json.dumps(raw, sort_keys=True) == before


def test_currency_is_upper_cased():
    assert validate(base("purchase", currency="cny"), NOW_MS)["currency"] == "CNY"


def test_raw_mac_is_kept_normalised_for_hashing():
    event = validate(base("browse", member_id=_DROP, wifi_mac="AA-BB-CC-00-11-22"), NOW_MS)
    assert event["wifi_mac"] == "aabbcc001122"


def test_raw_phone_is_kept_normalised_for_hashing():
    event = validate(base("browse", member_id=_DROP, phone="+86 138 0013 8000"), NOW_MS)
    assert event["phone"] == "+8613800138000"


def test_no_raw_keys_appear_when_none_were_sent():
    event = validate(base("browse"), NOW_MS)
    assert "wifi_mac" not in event and "phone" not in event


def test_null_raw_keys_from_an_avro_decoded_dict_are_dropped():
    event = validate(base("browse", wifi_mac=None, phone=None), NOW_MS)
    assert "wifi_mac" not in event and "phone" not in event


def test_empty_optional_strings_count_as_absent():
    event = validate(base("browse", page="", device_id=""), NOW_MS)
    assert event["page"] is None and event["device_id"] is None


def test_event_id_of_64_characters_is_accepted():
    assert validate(base("browse", event_id="x" * 64), NOW_MS)["event_id"] == "x" * 64


@pytest.mark.parametrize("rssi", [-120, -70, 0])
def test_rssi_at_the_edges_of_its_range_is_accepted(rssi):
    assert validate(base("wifi_checkin", rssi=rssi), NOW_MS)["rssi"] == rssi


def test_zero_amount_is_accepted():
    assert validate(base("purchase", amount_cents=0), NOW_MS)["amount_cents"] == 0


def test_event_within_future_skew_is_accepted():
    assert isinstance(validate(base("browse", occurred_at=NOW_MS + 300_000), NOW_MS), dict)


@given(raw_events())
@settings(max_examples=300)
def test_generated_valid_events_are_accepted(raw):
    assert isinstance(validate(raw, NOW_MS), dict)


@given(raw_events())
@settings(max_examples=200)
def test_validating_a_normalised_event_again_gives_it_back(raw):
    event = validate(raw, NOW_MS)
    assert validate(event, NOW_MS) == event


@given(raw_events())
@settings(max_examples=200)
def test_canonical_json_of_a_normalised_event_validates_back_to_it(raw):
    event = validate(raw, NOW_MS)
    assert validate_json_line(to_json_line(event), NOW_MS) == event


# --- malformed ----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [None, [], "event", 42])
def test_non_object_input_is_malformed(raw):
    rejected(raw, MALFORMED)


@pytest.mark.parametrize("line", ['{"event_type": ', "not json", "[1]", '"text"', b"\xff\xfe"])
def test_json_line_that_is_not_an_object_is_malformed(line):
    result = validate_json_line(line, NOW_MS)
    assert isinstance(result, Rejection) and result.reason == MALFORMED and result.event_id is None


def test_valid_json_line_is_validated():
    assert validate_json_line(json.dumps(base("share")), NOW_MS)["platform"] == "wechat"


# --- schema -------------------------------------------------------------------------------------

def test_missing_event_type_is_a_schema_rejection_listing_the_types():
    result = rejected(base("browse", event_type=_DROP), SCHEMA)
    assert "event_type" in result.detail and "wifi_checkin" in result.detail


@pytest.mark.parametrize("event_type", ["click", "", 3, ["browse"], {"a": 1}])
def test_unknown_event_type_is_a_schema_rejection(event_type):
    rejected(base("browse", event_type=event_type), SCHEMA)


def test_unknown_top_level_field_is_a_schema_rejection_naming_it():
    result = rejected(base("browse", memberId="m-2"), SCHEMA)
    assert "'memberId'" in result.detail and "properties" in result.detail


def test_field_of_another_event_type_is_a_schema_rejection():
    assert "'rssi'" in rejected(base("browse", rssi=-50), SCHEMA).detail


def test_many_unknown_fields_are_summarised():
    raw = base("browse", **{f"x{i}": 1 for i in range(8)})
    assert "and 3 more" in rejected(raw, SCHEMA).detail


def test_missing_event_id_is_a_schema_rejection():
    assert "event_id is required" in rejected(base("browse", event_id=_DROP), SCHEMA).detail


def test_event_id_that_is_not_a_string_is_a_schema_rejection():
    rejected(base("browse", event_id=17), SCHEMA)


def test_missing_occurred_at_is_a_schema_rejection():
    assert "occurred_at" in rejected(base("browse", occurred_at=_DROP), SCHEMA).detail


def test_naive_iso_occurred_at_is_a_schema_rejection_saying_add_an_offset():
    result = rejected(base("browse", occurred_at="2026-11-22T10:00:00"), SCHEMA)
    assert "occurred_at" in result.detail and "offset" in result.detail


def test_float_occurred_at_is_a_schema_rejection():
    rejected(base("browse", occurred_at=1.7953128e12), SCHEMA)


def test_channel_outside_vocabulary_is_a_schema_rejection_suggesting_other():
    result = rejected(base("browse", channel="tv"), SCHEMA)
    assert "'tv'" in result.detail and "'other'" in result.detail


def test_missing_channel_is_a_schema_rejection():
    rejected(base("browse", channel=_DROP), SCHEMA)


@pytest.mark.parametrize(
    "event_type, field, value",
    [
        ("wifi_checkin", "kind", "roam"),
        ("purchase", "status", "shipped"),
        ("share", "platform", "WeChat"),
        ("complaint", "category", "noise"),
        ("complaint", "severity", "critical"),
    ],
)
def test_enum_value_outside_vocabulary_is_a_schema_rejection(event_type, field, value):
    assert field in rejected(base(event_type, **{field: value}), SCHEMA).detail


@pytest.mark.parametrize("field", ["order_id", "status", "amount_cents"])
def test_missing_required_purchase_field_is_a_schema_rejection(field):
    assert field in rejected(base("purchase", **{field: _DROP}), SCHEMA).detail


@pytest.mark.parametrize("amount", [12.5, "1200", True, None])
def test_amount_that_is_not_an_integer_is_a_schema_rejection(amount):
    rejected(base("purchase", amount_cents=amount), SCHEMA)


def test_consent_that_is_not_a_boolean_is_a_schema_rejection():
    assert "consent_marketing" in rejected(base("browse", consent_marketing="yes"), SCHEMA).detail


def test_rssi_that_is_not_an_integer_is_a_schema_rejection():
    rejected(base("wifi_checkin", rssi="-50"), SCHEMA)


def test_properties_with_a_non_string_value_is_a_schema_rejection():
    assert "properties['coupon']" in rejected(base("browse", properties={"coupon": 5}), SCHEMA).detail


def test_properties_that_is_not_an_object_is_a_schema_rejection():
    rejected(base("browse", properties=["a"]), SCHEMA)


def test_items_that_is_not_a_list_is_a_schema_rejection():
    rejected(base("purchase", items={"sku": "a"}), SCHEMA)


def test_item_with_unknown_field_is_a_schema_rejection_naming_its_index():
    items = [{"sku": "a", "quantity": 1, "price_cents": 1}, {"sku": "b", "quantity": 1, "price_cents": 1, "qty": 2}]
    assert "items[1]" in rejected(base("purchase", items=items), SCHEMA).detail


def test_item_missing_sku_is_a_schema_rejection_naming_its_index():
    result = rejected(base("purchase", items=[{"quantity": 1, "price_cents": 1}]), SCHEMA)
    assert "items[0].sku" in result.detail


def test_item_that_is_not_an_object_is_a_schema_rejection():
    rejected(base("purchase", items=["sku-1"]), SCHEMA)


def test_raw_mac_that_is_not_a_string_is_a_schema_rejection():
    rejected(base("browse", wifi_mac=123456789012), SCHEMA)


# --- invalid_value ------------------------------------------------------------------------------

def test_negative_amount_is_an_invalid_value():
    assert "amount_cents must be >= 0" in rejected(base("purchase", amount_cents=-1), INVALID_VALUE).detail


@pytest.mark.parametrize("quantity", [0, -2])
def test_item_quantity_below_one_is_an_invalid_value_naming_its_index(quantity):
    result = rejected(base("purchase", items=[{"sku": "a", "quantity": quantity, "price_cents": 1}]), INVALID_VALUE)
    assert "items[0].quantity" in result.detail


def test_negative_item_price_is_an_invalid_value():
    rejected(base("purchase", items=[{"sku": "a", "quantity": 1, "price_cents": -1}]), INVALID_VALUE)


def test_amount_beyond_64_bits_is_an_invalid_value():
    rejected(base("purchase", amount_cents=2**63), INVALID_VALUE)


@pytest.mark.parametrize("rssi", [-121, 1, 50])
def test_rssi_outside_minus_120_to_0_is_an_invalid_value(rssi):
    assert "between -120 and 0" in rejected(base("wifi_checkin", rssi=rssi), INVALID_VALUE).detail


def test_wifi_checkin_without_store_id_is_an_invalid_value():
    assert "store_id" in rejected(base("wifi_checkin", store_id=_DROP), INVALID_VALUE).detail


def test_empty_event_id_is_an_invalid_value():
    rejected(base("browse", event_id=""), INVALID_VALUE)


def test_event_id_longer_than_64_is_an_invalid_value():
    assert "64" in rejected(base("browse", event_id="x" * 65), INVALID_VALUE).detail


def test_empty_order_id_is_an_invalid_value():
    rejected(base("purchase", order_id=""), INVALID_VALUE)


def test_string_longer_than_the_policy_limit_is_an_invalid_value():
    result = rejected(base("browse", page="p" * 11), INVALID_VALUE, policy=ValidationPolicy(max_string_len=10))
    assert "page" in result.detail and "10" in result.detail


def test_too_many_properties_is_an_invalid_value():
    policy = ValidationPolicy(max_properties=2)
    rejected(base("browse", properties={str(i): "v" for i in range(3)}), INVALID_VALUE, policy=policy)


def test_too_many_items_is_an_invalid_value():
    items = [{"sku": "a", "quantity": 1, "price_cents": 1}] * 3
    rejected(base("purchase", items=items), INVALID_VALUE, policy=ValidationPolicy(max_items=2))


@pytest.mark.parametrize("currency", ["yuan", "C1Y", "元元元"])
def test_currency_that_is_not_iso_4217_is_an_invalid_value(currency):
    rejected(base("purchase", currency=currency), INVALID_VALUE)


def test_occurred_at_in_epoch_seconds_is_an_invalid_value_saying_send_milliseconds():
    assert "milliseconds" in rejected(base("browse", occurred_at=NOW_MS // 1000), INVALID_VALUE).detail


def test_occurred_at_before_the_policy_minimum_is_an_invalid_value():
    rejected(base("browse", occurred_at="1999-12-31T23:59:59Z"), INVALID_VALUE)


def test_invalid_raw_mac_is_an_invalid_value():
    assert "wifi_mac" in rejected(base("browse", wifi_mac="aa:bb:cc"), INVALID_VALUE).detail


def test_invalid_raw_phone_is_an_invalid_value():
    assert "phone" in rejected(base("browse", phone="12-34"), INVALID_VALUE).detail


def test_hash_field_holding_a_raw_mac_is_an_invalid_value_pointing_at_wifi_mac():
    result = rejected(base("browse", wifi_mac_hash="aa:bb:cc:00:11:22"), INVALID_VALUE)
    assert "'wifi_mac'" in result.detail and "aa:bb:cc:00:11:22" not in result.detail


def test_upper_case_hash_is_an_invalid_value():
    rejected(base("browse", phone_hash=HASH.upper()), INVALID_VALUE)


# --- no_identity --------------------------------------------------------------------------------

def test_event_without_any_identifier_is_no_identity():
    result = rejected(base("browse", member_id=_DROP), NO_IDENTITY)
    assert "member_id" in result.detail and "wifi_mac" in result.detail


def test_empty_member_id_does_not_count_as_identity():
    rejected(base("browse", member_id=""), NO_IDENTITY)


@pytest.mark.parametrize(
    "identity",
    [
        {"device_id": "d"},
        {"wifi_mac_hash": HASH},
        {"phone_hash": HASH},
        {"wifi_mac": "aabbcc001122"},
        {"phone": "13800138000"},
    ],
)
def test_any_single_identifier_is_enough(identity):
    assert isinstance(validate(base("browse", member_id=_DROP, **identity), NOW_MS), dict)


def test_store_id_check_comes_before_identity_for_wifi_checkin():
    rejected(base("wifi_checkin", member_id=_DROP, store_id=_DROP), INVALID_VALUE)


# --- future_timestamp ---------------------------------------------------------------------------

def test_event_beyond_future_skew_is_a_future_timestamp_with_the_distance():
    result = rejected(base("browse", occurred_at=NOW_MS + 3_600_000), FUTURE_TIMESTAMP)
    assert "3600 s ahead" in result.detail and "clock" in result.detail


def test_future_skew_comes_from_the_policy():
    policy = ValidationPolicy(max_future_skew_ms=1_000)
    rejected(base("browse", occurred_at=NOW_MS + 2_000), FUTURE_TIMESTAMP, policy=policy)


# --- rejections ---------------------------------------------------------------------------------

def test_rejection_carries_the_event_id_when_readable():
    assert rejected(base("purchase", amount_cents=-5), INVALID_VALUE).event_id == "e-1"


@pytest.mark.parametrize("event_id", [None, 7, "", "x" * 65])
def test_rejection_event_id_is_none_when_unreadable(event_id):
    raw = base("purchase", amount_cents=-5, event_id=event_id)
    assert validate(raw, NOW_MS).event_id is None


def test_rejection_is_immutable():
    result = rejected(None, MALFORMED)
    with pytest.raises(AttributeError):
        result.reason = SCHEMA


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_future_skew_ms", -1),
        ("min_occurred_at_ms", -5),
        ("max_string_len", 0),
        ("max_properties", 0),
        ("max_items", 0),
    ],
)
def test_policy_refuses_bad_values_naming_them(field, value):
    with pytest.raises(ValueError, match=f"{field}.*{value}"):
        ValidationPolicy(**{field: value})


@given(
    mac=macs,
    place=st.sampled_from(
        ["channel", "unknown_field_value", "unknown_field_name", "kind", "event_type", "hash", "raw"]
    ),
)
def test_rejection_details_never_echo_a_raw_mac(mac, place):
    raw = _raw_with_identifier_in(place, mac.upper().replace(":", "-"))
    result = validate(raw, NOW_MS)
    assert isinstance(result, Rejection)
    assert mac.replace(":", "") not in re.sub(r"[^0-9a-f]", "", result.detail.lower())


@given(
    phone=phones,
    place=st.sampled_from(["channel", "unknown_field_name", "kind", "event_type", "hash", "properties_key"]),
)
def test_rejection_details_never_echo_a_phone_number(phone, place):
    result = validate(_raw_with_identifier_in(place, phone), NOW_MS)
    assert isinstance(result, Rejection)
    assert phone.lstrip("+") not in re.sub(r"[^0-9]", "", result.detail)


def _raw_with_identifier_in(place: str, value: str) -> dict:
    if place == "channel":
        return base("wifi_checkin", channel=value)
    if place == "unknown_field_value":
        return base("wifi_checkin", mac_address=value)
    if place == "unknown_field_name":
        return base("wifi_checkin", **{value: "x"})
    if place == "kind":
        return base("wifi_checkin", kind=value)
    if place == "event_type":
        return base("wifi_checkin", event_type=value)
    if place == "hash":
        return base("wifi_checkin", wifi_mac_hash=value)
    if place == "properties_key":
        return base("wifi_checkin", properties={value: 1})
    return base("wifi_checkin", wifi_mac=value, store_id=_DROP)


def test_normalised_event_does_not_share_nested_containers_with_the_input():
    raw = base("purchase", properties={"a": "1"}, items=[{"sku": "a", "quantity": 1, "price_cents": 1}])
    event = validate(raw, NOW_MS)
    event["properties"]["b"] = "2"
    event["items"][0]["sku"] = "changed"
    assert raw["properties"] == {"a": "1"} and raw["items"][0]["sku"] == "a"
