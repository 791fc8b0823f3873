"""API keys, token buckets, the key's rules on events, AP MAC spellings and the stats document."""

import math
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.collect.intake import admit, type_label
from pipeline.collect.keys import ApiKey, AuthError, KeyRing
from pipeline.collect.ratelimit import TokenBucket
from pipeline.collect.sightings import Translation
from pipeline.collect.stats import CollectorStats
from pipeline.collect.stores import StoreMap, StoreMapError, normalise_ap_mac
from pipeline.config import ConfigError, load_settings
from pipeline.validation import INVALID_VALUE, MALFORMED, Rejection

APP_KEY = ApiKey("app-ios", frozenset({"browse", "purchase"}), 100.0, 200, "app-ios:1234")


def test_keys_map_to_source_types_and_rate_and_unknown_keys_are_refused():
    settings = load_settings(None, collector_api_keys=[
        {"key": "k" * 20, "source": "app-ios", "types": ["browse"], "rate_limit_events_per_s": 5},
        {"key": "g" * 20, "source": "gw-7"},
    ], collector_rate_limit_events_per_s=50, collector_rate_limit_burst=60)
    ring = KeyRing.from_settings(settings)
    app = ring.authenticate("Bearer " + "k" * 20)
    assert (app.source, app.types, app.rate_per_s, app.burst) == ("app-ios", frozenset({"browse"}), 5, 60)
    assert ring.authenticate("bearer  " + "g" * 20).types >= {"wifi_checkin", "browse"}
    assert "k" * 20 not in app.label
    for header, words in [(None, "missing"), ("", "missing"), ("Basic abc", "Bearer"), ("Bearer ", "Bearer"),
                          ("Bearer " + "x" * 20, "unknown API key")]:
        with pytest.raises(AuthError, match=words):
            ring.authenticate(header)


def test_keys_from_a_file_join_those_of_the_settings_and_a_repeated_key_is_an_error(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text('[{"key": "%s", "source": "pos"}]' % ("p" * 20))
    settings = load_settings(None, collector_api_keys_file=path, collector_api_keys=[{"key": "k" * 20, "source": "a"}])
    assert [k.source for k in settings.collector_keys()] == ["a", "pos"]
    path.write_text('[{"key": "%s", "source": "pos"}]' % ("k" * 20))
    with pytest.raises(ConfigError, match="listed twice"):
        settings.collector_keys()
    path.write_text('[{"key": "%s", "source": "pos", "types": ["coupon"]}]' % ("p" * 20))
    with pytest.raises(ConfigError, match="coupon"):
        settings.collector_keys()


@given(st.floats(1, 1000), st.integers(1, 500),
       st.lists(st.tuples(st.floats(0, 2), st.integers(1, 300)), min_size=1, max_size=50))
def test_a_bucket_never_lets_through_more_than_burst_plus_rate_times_elapsed(rate, burst, steps):
    bucket = TokenBucket.full(rate, burst, 0.0)
    now, taken = 0.0, 0
    for pause, count in steps:
        now += pause
        wait = bucket.take(count, now)
        if wait == 0:
            taken += min(count, burst)
        else:
            assert wait > 0 and not math.isinf(wait)
    assert taken <= burst + rate * now + 1e-6


def test_a_refused_take_says_how_long_to_wait_and_that_wait_is_enough():
    bucket = TokenBucket.full(10.0, 100, 0.0)
    assert bucket.take(100, 0.0) == 0
    wait = bucket.take(50, 0.0)
    assert wait == pytest.approx(5.0)
    assert bucket.take(50, wait) == 0


def test_admit_stamps_the_source_and_enforces_the_keys_types_and_source():
    assert admit({"event_type": "browse"}, APP_KEY)["source_id"] == "app-ios"
    assert admit({"event_type": "browse", "source_id": "app-ios"}, APP_KEY)["source_id"] == "app-ios"
    refused = admit({"event_type": "share", "event_id": "e1"}, APP_KEY)
    assert (refused.reason, refused.event_id) == (INVALID_VALUE, "e1") and "not allowed for this API key" in refused.detail
    assert admit({"event_type": "browse", "source_id": "gw-9"}, APP_KEY).reason == INVALID_VALUE
    assert admit([1, 2], APP_KEY).reason == MALFORMED
    passed = Rejection(MALFORMED, "line 3")
    assert admit(passed, APP_KEY) is passed
    assert admit({"event_type": "nope"}, APP_KEY) == {"event_type": "nope", "source_id": "app-ios"}  # validation's job
    assert [type_label(x) for x in ({"event_type": "share"}, {"event_type": 3}, "x")] == ["share", "unknown", "unknown"]


macs = st.binary(min_size=6, max_size=6)


@given(macs, st.sampled_from([":", "-", "", "."]), st.booleans())
def test_every_common_spelling_of_an_ap_mac_normalises_alike(raw, separator, upper):
    hexes = [f"{b:02x}" for b in raw]
    if separator == ".":
        text = ".".join("".join(hexes[i:i + 2]) for i in range(0, 6, 2))
    else:
        text = separator.join(hexes)
    text = text.upper() if upper else text
    assert normalise_ap_mac(text) == ":".join(hexes)


def test_store_map_prefers_the_ap_and_refuses_bad_shapes():
    stores = StoreMap.from_dict({"networks": {"N1": "s-net"}, "aps": {"AA-BB-CC-00-11-22": "s-ap"}})
    assert stores.store_for("aa:bb:cc:00:11:22", "N1") == "s-ap"
    assert stores.store_for("aa:bb:cc:00:11:23", "N1") == "s-net"
    assert stores.store_for("aa:bb:cc:00:11:23", "N2") is None and stores.store_for(None, None) is None
    for bad in ({"stores": {}}, {"aps": {"not-a-mac": "s"}}, {"networks": {"N1": 3}}, {"aps": []}, []):
        with pytest.raises(StoreMapError):
            StoreMap.from_dict(bad)


def test_stats_group_by_source_type_and_reason():
    stats = CollectorStats(0)
    stats.count_accepted("app", Counter({"browse": 3}))
    stats.count_accepted("app", Counter({"browse": 2, "share": 1}))
    stats.count_rejected("app", "browse", "schema")
    stats.count_rejected("app", "unknown", "malformed")
    translation = Translation(unknown_store=2)
    translation.unknown_aps["aa:bb:cc:00:11:22"] = 2
    stats.count_unknown(translation)
    stats.count_request("events", 202)
    doc = stats.to_dict()
    assert doc["started_at"] == "1970-01-01T00:00:00.000Z"
    assert doc["accepted"] == {"app": {"browse": 5, "share": 1}}
    assert doc["rejected"] == {"app": {"browse": {"schema": 1}, "unknown": {"malformed": 1}}}
    assert doc["unknown_stores"] == {"skipped": 2, "networks": {}, "aps": {"aa:bb:cc:00:11:22": 2}}
    assert doc["requests"] == {"events": {"202": 1}}
