"""The generic gateway format -> wifi_checkin events."""

import pytest

from pipeline.collect import gateway
from pipeline.events import parse_occurred_at
from pipeline.privacy import IdentifierHasher
from pipeline.validation import INVALID_VALUE, MALFORMED, SCHEMA, validate

HASHER = IdentifierHasher(b"test-secret")
POST = {
    "gateway_id": "gw-7", "store_id": "sh-xuhui-01",
    "observations": [
        {"mac": "AA-BB-CC-00-11-22", "rssi": -61, "time": "2026-11-22T10:31:05+08:00", "associated": True,
         "ap_id": "ap-3"},
        {"mac": "aabb.cc00.1123", "rssi": -80.0, "time": 1795314665000},
    ],
}


def test_each_observation_becomes_a_checkin_of_the_keys_source():
    translation = gateway.translate(POST, "gw-fleet", HASHER)
    (i1, first), (i2, second) = translation.events
    assert (i1, i2) == (0, 1) and not translation.rejections
    assert first["wifi_mac_hash"] == HASHER.hash_mac("aa:bb:cc:00:11:22")
    assert (first["kind"], first["ap_id"], first["rssi"], first["store_id"]) == ("associate", "ap-3", -61, "sh-xuhui-01")
    assert (first["source_id"], first["properties"]) == ("gw-fleet", {"gateway_id": "gw-7"})
    assert first["occurred_at"] == parse_occurred_at("2026-11-22T10:31:05+08:00")
    assert (second["kind"], second["rssi"], second["ap_id"]) == ("probe", -80, None)
    assert first["event_id"] != second["event_id"] and first["event_id"].startswith("gw-")
    assert gateway.translate(POST, "gw-fleet", HASHER).events[0][1]["event_id"] == first["event_id"]
    for event in (first, second):
        assert type(validate(event, parse_occurred_at("2026-11-23T00:00:00Z"))) is dict


def test_bad_observations_are_rejected_alone():
    post = {**POST, "observations": [
        {"mac": "zz", "time": 1795314665000}, {"time": 1795314665000}, 5,
        {"mac": "aa:bb:cc:00:11:22", "time": "yesterday"}, {"mac": "aa:bb:cc:00:11:22", "time": 1, "rssi": "-5"},
        {"mac": "aa:bb:cc:00:11:22", "time": 1, "signal": 3}, {"mac": "aa:bb:cc:00:11:22", "time": 1, "associated": "y"},
    ]}
    translation = gateway.translate(post, "gw", HASHER)
    assert not translation.events
    assert [(i, r.reason) for i, r in translation.rejections] == [
        (0, INVALID_VALUE), (1, SCHEMA), (2, MALFORMED), (3, SCHEMA), (4, SCHEMA), (5, SCHEMA), (6, SCHEMA)]


@pytest.mark.parametrize("post, words", [
    ({"store_id": "s", "observations": []}, "gateway_id"),
    ({"gateway_id": "g", "observations": []}, "store_id"),
    ({"gateway_id": "g", "store_id": "s"}, "observations"),
    ({"gateway_id": "g", "store_id": "s", "observations": [], "extra": 1}, "extra"),
])
def test_a_post_without_its_required_fields_is_refused(post, words):
    with pytest.raises(gateway.PayloadError, match=words):
        gateway.translate(post, "gw", HASHER)
