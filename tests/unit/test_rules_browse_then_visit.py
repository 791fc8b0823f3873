"""browse_then_visit: browsed online in the last N days, now in a store -> coupon with the skus."""

from __future__ import annotations

from test_rules_harness import DAY, NO_QUIET, T0, Pipeline, browse, checkin, config

from pipeline.rules import trigger_id

BTV = {"type": "browse_then_visit", "params": {"window_days": 7, "max_skus": 3}}


def pipeline(**controls) -> Pipeline:
    return Pipeline(config(BTV, **{**NO_QUIET, **controls}))


def test_member_who_browsed_then_connects_to_store_wifi_gets_the_skus_most_recent_first():
    p = pipeline()
    p.feed(browse("b1", 0, member_id="42", sku="sku-1"), browse("b2", 5, member_id="42", sku="sku-2"),
           checkin("c1", 60, "associate", member_id="42", store="S1"))
    (trigger,) = p.fired()
    assert (trigger.person_id, trigger.member_id, trigger.store_id) == ("m:42", "42", "S1")
    assert trigger.payload["skus"] == ["sku-2", "sku-1"]
    assert trigger.payload["store_id"] == "S1" and trigger.payload["arrival"] == "wifi_connected"
    assert trigger.cause_event_ids == ("c1",) and trigger.trigger_id == trigger_id("browse_then_visit", ["c1"])
    assert trigger.event_time == trigger.fired_at == T0 + 60 * 60_000


def test_portal_login_counts_as_being_in_the_store():
    p = pipeline()
    p.feed(browse("b1", 0, member_id="42", sku="sku-1"), checkin("c1", 30, "portal_login", member_id="42"))
    assert [t.payload["arrival"] for t in p.fired()] == ["wifi_connected"]


def test_probes_of_a_passerby_do_not_fire():
    p = pipeline()
    p.feed(checkin("c0", 0, "associate", member_id="42", store="S9"),  # links the member's MAC; no browse yet
           browse("b1", 60, member_id="42", sku="sku-1"))
    p.feed(checkin("c1", 120, "probe", rssi=-85), checkin("c2", 121, "probe", rssi=-85),
           checkin("c3", 129, "probe", rssi=-85))
    assert p.fired() == [] and p.out.suppressed == []


def test_a_visit_that_becomes_a_visitor_fires_at_the_check_in_that_made_it_one():
    p = pipeline()
    p.feed(checkin("c0", 0, "associate", member_id="42", store="S9"),  # links the member's MAC; no browse yet
           browse("b1", 60, member_id="42", sku="sku-1"))
    # Visitor thresholds: 5 min of dwell and -70 dBm (VisitPolicy defaults).
    p.feed(checkin("c1", 120, "probe", rssi=-80), checkin("c2", 123, "probe", rssi=-65),
           checkin("c3", 126, "probe", rssi=-75), checkin("c4", 128, "probe", rssi=-60))
    (trigger,) = p.fired()
    assert trigger.cause_event_ids == ("c3",) and trigger.payload["arrival"] == "visitor"


def test_one_visit_fires_once_however_many_check_ins_follow_and_in_any_batching():
    events = [browse("b1", 0, member_id="42", sku="sku-1"), checkin("c1", 60, "associate", member_id="42")]
    events += [checkin(f"c{i}", 60 + i, "associate") for i in range(2, 12)]
    for size in (1, 3, 100):
        p = pipeline()
        p.feed(*events, batch_size=size)
        assert [t.cause_event_ids for t in p.fired()] == [("c1",)]
        assert p.out.suppressed == []


def test_browse_exactly_window_days_before_arrival_counts_and_one_ms_earlier_does_not():
    arrival = T0 + 10 * DAY
    p = pipeline()
    p.feed(browse("old", 0, member_id="42", sku="too-old", occurred_at=arrival - 7 * DAY - 1),
           browse("edge", 0, member_id="42", sku="edge", occurred_at=arrival - 7 * DAY),
           checkin("c1", 0, "associate", member_id="42", occurred_at=arrival))
    assert p.fired()[0].payload["skus"] == ["edge"]


def test_no_trigger_when_every_browse_is_outside_the_window():
    arrival = T0 + 10 * DAY
    p = pipeline()
    p.feed(browse("old", 0, member_id="42", sku="sku-1", occurred_at=arrival - 7 * DAY - 1),
           checkin("c1", 0, "associate", member_id="42", occurred_at=arrival))
    assert p.fired() == []


def test_no_trigger_without_browsed_products():
    p = pipeline()
    p.feed(browse("b1", 0, member_id="42", page="home"), checkin("c1", 30, "associate", member_id="42"))
    assert p.fired() == []


def test_browses_after_the_arrival_are_not_in_the_payload():
    p = pipeline()
    p.feed(browse("b1", 0, member_id="42", sku="before"), checkin("c1", 30, "associate", member_id="42"),
           browse("b2", 31, member_id="42", sku="after"))
    assert p.fired()[0].payload["skus"] == ["before"]


def test_skus_are_distinct_and_capped_at_max_skus():
    p = pipeline()
    skus = ["a", "b", "a", "c", "d", "e", "d"]
    p.feed(*[browse(f"b{i}", i, member_id="42", sku=sku) for i, sku in enumerate(skus)],
           checkin("c1", 30, "associate", member_id="42"))
    assert p.fired()[0].payload["skus"] == ["d", "e", "c"]


def test_anonymous_browsing_follows_the_member_who_logs_in_at_the_store():
    p = pipeline()
    p.feed(browse("b1", 0, device_id="ipad-7", sku="sku-1"),
           checkin("c1", 30, "portal_login", device_id="ipad-7", member_id="42", store="S1"))
    (trigger,) = p.fired()
    assert trigger.person_id == "m:42" and trigger.payload["skus"] == ["sku-1"]


def test_anonymous_person_in_store_gets_a_trigger_without_member_id():
    p = pipeline()
    p.feed(browse("b1", 0, device_id="ipad-7", sku="sku-1"),
           checkin("c1", 30, "associate", device_id="ipad-7", mac="mac-7"))
    (trigger,) = p.fired()
    assert trigger.person_id == "d:ipad-7" and trigger.member_id is None


def test_two_instances_with_different_windows_fire_on_their_own_topics():
    p = Pipeline(config({"name": "btv_day", "type": "browse_then_visit", "params": {"window_days": 1}},
                        {"name": "btv_month", "type": "browse_then_visit", "params": {"window_days": 30}},
                        **NO_QUIET))
    arrival = T0 + 40 * DAY
    p.feed(browse("b1", 0, member_id="42", sku="sku-1", occurred_at=arrival - 3 * DAY),
           checkin("c1", 0, "associate", member_id="42", occurred_at=arrival))
    assert [t.topic() for t in p.fired()] == ["o2o.triggers.btv_month"]


def test_next_visit_within_cooldown_is_suppressed_and_recorded():
    p = pipeline()
    p.feed(browse("b1", 0, member_id="42", sku="sku-1"), checkin("c1", 30, "associate", member_id="42"),
           checkin("c2", 30 + 3 * 60, "associate", member_id="42"))
    assert len(p.fired()) == 1
    (suppressed,) = p.out.suppressed
    assert (suppressed.reason, suppressed.trigger.cause_event_ids) == ("cooldown", ("c2",))
