"""vip_arrival: a member over the revenue threshold (or of a VIP tier) arrives -> staff alert."""

from __future__ import annotations

from test_rules_harness import NO_QUIET, Pipeline, browse, checkin, config, purchase

VIP = {"type": "vip_arrival", "params": {"min_revenue_cents": 500_000}}


def pipeline() -> Pipeline:
    return Pipeline(config(VIP, **NO_QUIET))


def test_member_at_the_revenue_threshold_arriving_fires_a_staff_alert():
    p = pipeline()
    p.feed(purchase("p1", 0, 300_000, member_id="42"), purchase("p2", 10, 200_000, member_id="42"),
           checkin("c1", 60, "associate", member_id="42", store="S1"))
    (trigger,) = p.fired()
    assert (trigger.rule, trigger.person_id, trigger.member_id, trigger.store_id) == ("vip_arrival", "m:42", "42", "S1")
    assert trigger.payload == {"store_id": "S1", "member_id": "42", "lifetime_revenue_cents": 500_000, "tier": None,
                               "arrival": "wifi_connected", "visit_id": trigger.payload["visit_id"]}


def test_member_one_cent_under_the_threshold_does_not_fire():
    p = pipeline()
    p.feed(purchase("p1", 0, 499_999, member_id="42"), checkin("c1", 60, "associate", member_id="42"))
    assert p.fired() == []


def test_unpaid_and_refunded_purchases_do_not_count():
    p = pipeline()
    p.feed(purchase("p1", 0, 600_000, member_id="42"), purchase("p2", 1, 600_000, member_id="42", status="created"),
           purchase("p3", 2, 200_000, member_id="42", status="refunded"),
           checkin("c1", 60, "associate", member_id="42"))
    assert p.fired() == []  # 600,000 paid - 200,000 refunded = 400,000


def test_tier_property_makes_a_vip_without_revenue():
    p = pipeline()
    p.feed(browse("b1", 0, member_id="42", properties={"tier": "gold"}), checkin("c1", 60, "associate", member_id="42"))
    (trigger,) = p.fired()
    assert trigger.payload["tier"] == "gold" and trigger.payload["lifetime_revenue_cents"] == 0


def test_latest_tier_by_event_time_wins():
    p = pipeline()
    p.feed(browse("b2", 10, member_id="42", properties={"tier": "silver"}),
           browse("b1", 0, member_id="42", properties={"tier": "gold"}),  # arrives late: older, ignored
           checkin("c1", 60, "associate", member_id="42"))
    assert p.fired() == []


def test_anonymous_big_spender_is_not_alerted_until_identified_as_member():
    p = pipeline()
    p.feed(purchase("p1", 0, 900_000, device_id="d-1"), checkin("c1", 60, "associate", device_id="d-1", mac="m-1"),
           browse("other", 1000, member_id="9"))  # other traffic: the S1 visit closes, still anonymous
    assert p.fired() == []
    p.feed(checkin("c2", 60 * 30, "portal_login", device_id="d-1", member_id="77", store="S2"))
    (trigger,) = p.fired()
    assert trigger.member_id == "77" and trigger.payload["lifetime_revenue_cents"] == 900_000


def test_a_member_without_wifi_connection_or_dwell_does_not_fire():
    p = pipeline()
    p.feed(purchase("p1", 0, 900_000, member_id="42"), checkin("c0", 1, "disassociate", member_id="42", rssi=None))
    p.feed(checkin("c1", 120, "probe", rssi=-90), checkin("c2", 130, "probe", rssi=-90))
    assert p.fired() == []


def test_a_purchase_after_the_arrival_does_not_make_it_a_vip_arrival_in_any_batching():
    events = [purchase("p1", 0, 400_000, member_id="42"), checkin("c1", 60, "associate", member_id="42"),
              purchase("p2", 61, 200_000, member_id="42", store_id="S1"), checkin("c2", 62, "associate", member_id="42")]
    for size in (1, 4):
        p = pipeline()
        p.feed(*events, batch_size=size)
        assert p.fired() == []


def test_tier_sent_on_every_event_is_remembered_from_its_first_time():
    p = pipeline()
    p.feed(browse("b0", 0, member_id="42", properties={"tier": "gold"}),
           checkin("c1", 60, "associate", member_id="42"),
           *[browse(f"b{i}", 60 + i, member_id="42", properties={"tier": "gold"}) for i in range(1, 10)])
    assert [t.payload["tier"] for t in p.fired()] == ["gold"]
