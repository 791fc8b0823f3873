"""Cisco Meraki Scanning API v2/v3 posts -> wifi_checkin events; RSSI conversion; the secret."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.collect import meraki
from pipeline.collect.stores import StoreMap
from pipeline.events import parse_occurred_at
from pipeline.privacy import IdentifierHasher
from pipeline.validation import INVALID_VALUE, SCHEMA, validate
from tests.collector_payloads import (
    SECRET, STORE_MAP, V2_AP, V2_CLIENT_MACS, V3_CLIENT_MACS, V3_NETWORK, meraki_v2, meraki_v3,
)

HASHER = IdentifierHasher(b"test-secret")
STORES = StoreMap.from_dict(STORE_MAP)
NOW_MS = parse_occurred_at("2026-11-22T00:00:00Z")


def events_of(payload, stores=STORES):
    return [event for _, event in meraki.translate(payload, stores, HASHER).events]


def test_v2_devices_seen_example_becomes_one_checkin_per_observation():
    first, second = events_of(meraki_v2())
    assert first["wifi_mac_hash"] == HASHER.hash_mac(V2_CLIENT_MACS[0])
    assert (first["store_id"], first["ap_id"], first["source_id"], first["channel"]) == (
        "sh-xuhui-01", V2_AP, "meraki", "wifi")
    assert first["occurred_at"] == parse_occurred_at("2016-09-24T00:06:23Z")
    assert (first["rssi"], first["kind"]) == (47 - 95, "associate")     # ssid '.interwebs': associated
    assert (second["rssi"], second["kind"]) == (-48, "probe")           # ssid null: only probing
    for event in (first, second):
        assert type(validate(event, NOW_MS)) is dict, validate(event, NOW_MS)


def test_v3_wifi_example_becomes_one_checkin_per_location_or_latest_record():
    located_1, located_2, latest = events_of(meraki_v3())
    assert located_1["wifi_mac_hash"] == located_2["wifi_mac_hash"] == HASHER.hash_mac(V3_CLIENT_MACS[0])
    # the AP that heard the client best, its RSSI already in dBm; an AP entry wins over the network's
    assert (located_1["ap_id"], located_1["rssi"], located_1["store_id"]) == ("aa:aa:aa:11:11:11", -32, "sh-ap-store")
    assert (located_2["ap_id"], located_2["rssi"], located_2["store_id"]) == ("aa:aa:aa:44:44:44", -30, "sh-network-store")
    assert located_2["occurred_at"] == parse_occurred_at("2019-11-28T14:27:46Z")
    assert located_1["kind"] == "associate" and located_1["properties"] == {"meraki_network_id": V3_NETWORK}
    assert (latest["ap_id"], latest["rssi"], latest["kind"]) == ("a8:46:9d:27:56:63", -60, "probe")
    assert latest["occurred_at"] == parse_occurred_at("2021-11-23T14:01:49Z")
    for event in (located_1, located_2, latest):
        assert type(validate(event, NOW_MS)) is dict


def test_the_same_sighting_posted_twice_has_the_same_event_id():
    assert [e["event_id"] for e in events_of(meraki_v3())] == [e["event_id"] for e in events_of(meraki_v3())]
    ids = [e["event_id"] for e in events_of(meraki_v3())]
    assert len(set(ids)) == 3 and all(i.startswith("mk-") and len(i) <= 64 for i in ids)


def test_unknown_ap_and_network_are_counted_and_reported_not_dropped_silently():
    translation = meraki.translate(meraki_v3(), StoreMap.from_dict({"aps": {"aa:aa:aa:11:11:11": "s1"}}), HASHER)
    assert len(translation.events) == 1
    assert translation.unknown_store == 2
    assert translation.unknown_report() == {
        "observations": 2, "networks": {V3_NETWORK: 2}, "aps": {"aa:aa:aa:44:44:44": 1, "a8:46:9d:27:56:63": 1}}
    v2 = meraki_v2()
    v2["data"]["apMac"] = "00:18:0a:13:dd:ff"
    assert meraki.translate(v2, STORES, HASHER).unknown_report() == {
        "observations": 2, "networks": {}, "aps": {"00:18:0a:13:dd:ff": 2}}


def test_bad_observations_are_rejected_alone_without_echoing_the_mac():
    payload = meraki_v2()
    observations = payload["data"]["observations"]
    observations[0]["clientMac"] = "18:fe:34:fc:5a"            # 5 bytes: not a MAC
    observations.append({"clientMac": "18:fe:34:fc:5a:80", "rssi": 30})  # no time
    observations.append("nonsense")
    translation = meraki.translate(payload, STORES, HASHER)
    assert len(translation.events) == 1
    reasons = [(index, r.reason) for index, r in translation.rejections]
    assert reasons == [(0, INVALID_VALUE), (2, SCHEMA), (3, "malformed")]
    assert "18:fe:34" not in json.dumps([r.detail for _, r in translation.rejections])


def test_ble_posts_are_answered_and_ignored_other_posts_are_refused():
    assert events_of(meraki_v3(type="BLE")) == []
    assert events_of(meraki_v2(type="BluetoothDevicesSeen")) == []
    for payload in (meraki_v2(version="1.0"), meraki_v3(data={"networkId": "x"}), {"secret": SECRET}):
        with pytest.raises(meraki.PayloadError):
            meraki.translate(payload, STORES, HASHER)


def test_the_secret_must_match():
    meraki.check_secret(meraki_v2(), SECRET)
    for payload, expected in [(meraki_v2(secret="wrong"), SECRET), ({"version": "2.0"}, SECRET),
                              (meraki_v2(secret=7), SECRET), (meraki_v2(), None)]:
        with pytest.raises(meraki.SecretError):
            meraki.check_secret(payload, expected)


@given(st.one_of(st.integers(-200, 200), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=6), st.none(), st.booleans()))
def test_converted_rssi_is_always_none_or_within_the_schema_range(value):
    for convert in (meraki.v2_rssi_to_dbm, meraki.v3_rssi_to_dbm):
        dbm = convert(value)
        assert dbm is None or (type(dbm) is int and -120 <= dbm <= 0)


def test_rssi_conversion_follows_the_documented_rule():
    assert meraki.v2_rssi_to_dbm(47) == -48 and meraki.v2_rssi_to_dbm(0) == -95
    assert meraki.v3_rssi_to_dbm("-47") == -47 and meraki.v3_rssi_to_dbm(-60.4) == -60
    assert meraki.v3_rssi_to_dbm(40) == -55       # a positive v3 value is SNR-style like v2
    assert meraki.v2_rssi_to_dbm(200) == 0 and meraki.v3_rssi_to_dbm(-300) == -120


@given(st.lists(st.binary(min_size=6, max_size=6), min_size=1, max_size=10), st.sampled_from(["v2", "v3"]))
def test_no_client_mac_in_any_spelling_survives_translation(raw_macs, version):
    macs = [":".join(f"{b:02x}" for b in raw) for raw in raw_macs]
    payload = meraki_v2() if version == "v2" else meraki_v3()
    template = payload["data"]["observations"][0]
    payload["data"]["observations"] = [{**template, "clientMac": mac.upper()} for mac in macs]
    translation = meraki.translate(payload, STORES, HASHER)
    text = json.dumps([e for _, e in translation.events] + [r.detail for _, r in translation.rejections]).lower()
    for mac in macs:
        assert mac not in text and mac.replace(":", "") not in text.replace(HASHER.hash_mac(mac), "")
