"""A small fixed O2O day for the warehouse tests, with every KPI's answer computed by hand.

The period is 2026-11-22 (UTC), [2026-11-22T00:00Z, 2026-11-23T00:00Z). Stores S1 and S2.

    person         who / what                                                    ids
    m:alice        repeat visitor of S1 (visited 11-20), browses (xmas), orders online, visits S1
                   12:00-12:30 and pays at the till 12:20, shares                 a01..a10
    w:bobmac       Bob's phone MAC: passes S2 at 00:00 (a passerby)              b01
    d:bob-phone    Bob's app: browses (xmas) 10:00, portal login at S1 10:30:
                   MAC merged into the device (merge 1)                          b02, b03
    m:bob          Bob logs in 10:40: the device is merged into him (merge 2);
                   in S1 10:30-10:50, pays 10:45 at the till, complains 15:00,
                   pays online 16:00                                             b04..b09
    p:carol        new visitor of S1 14:00-14:10, orders but never pays, shares  c01..c04
    m:dave         a member seen only on 11-01                                   d01
    m:erin         browses (spring) 20:00 and pays online 20:30; both arrive
                   late, the next day                                            e01, e02
    m:frank        first seen exactly at the period end (excluded)               z01
    d:gina-tab     browses (spring) 18:00, orders 18:10, never pays              g21, g22
    d:ivan         browses (xmas) 19:00                                          i01
    w:ghost        passes S2 16:00                                               g01
    w:hank         passes S1 17:00-17:01 (weak signal)                           h01, h02

Triggers: t1 browse_then_visit for Alice 12:00 (S1), t2 welcome_member for d:bob-phone 10:30 (S1),
t3 complaint_alert (service) for Bob 15:00, t4 browse_then_visit for Erin 20:00, t0 welcome_member
for Dave on 11-01 (before the period); suppressed: browse_then_visit for Carol 14:00 (consent)
and for Bob 15:05 (complaint_suppression).

`DUPLICATES` are copies of records (at-least-once delivery) that the tests insert again.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pipeline.events import COMMON_FIELDS, SPECS, TYPE_FIELDS

FROM = "2026-11-22"
TO = "2026-11-23"


def ms(text: str) -> int:
    """Epoch ms of a UTC time written '2026-11-22T10:30' or '10:30' (on 2026-11-22), seconds optional."""
    if "T" not in text:
        text = f"2026-11-22T{text}"
    moment = datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


FROM_MS, TO_MS = ms("2026-11-22T00:00"), ms("2026-11-23T00:00")

_DEFAULTS = {
    (event_type, spec.name): spec.default
    for event_type, specs in SPECS.items() for spec in specs if not spec.required
}


def event(event_type: str, event_id: str, at: str, person: str, *, late: bool = False,
          ingested_at: str | None = None, **fields: Any) -> dict[str, Any]:
    """A normalised event (all keys of its type, schema defaults) plus what the sink adds."""
    record: dict[str, Any] = {"event_type": event_type}
    for key in (*COMMON_FIELDS, *TYPE_FIELDS[event_type]):
        default = _DEFAULTS.get((event_type, key))
        record[key] = dict(default) if isinstance(default, dict) else list(default) if isinstance(default, list) else default
    record.update(event_id=event_id, occurred_at=ms(at), **fields)
    record["person_id"] = person
    record["ingested_at"] = ms(ingested_at) if ingested_at else record["occurred_at"] + 2_000
    record["late"] = late
    return record


def browse(event_id, at, person, campaign=None, channel="app", **fields):
    return event("browse", event_id, at, person, channel=channel, page=f"/p/{event_id}", campaign=campaign, **fields)


def wifi(event_id, at, person, store, kind="associate", rssi=-55, **fields):
    return event("wifi_checkin", event_id, at, person, channel="wifi", store_id=store, kind=kind, ap_id=f"{store}-ap1",
                 rssi=rssi, wifi_mac_hash=f"mac-{person[2:]}", **fields)


def purchase(event_id, at, person, order_id, status, amount, channel="pos", store=None, **fields):
    return event("purchase", event_id, at, person, channel=channel, store_id=store, order_id=order_id, status=status,
                 amount_cents=amount, currency="CNY", items=[{"sku": "sku-1", "quantity": 1, "price_cents": amount}],
                 **fields)


EVENTS: list[dict[str, Any]] = [
    wifi("a01", "2026-11-20T14:00", "m:alice", "S1", rssi=-50, member_id="alice"),
    wifi("a02", "2026-11-20T14:20", "m:alice", "S1", rssi=-52),
    browse("a03", "09:00", "m:alice", "xmas", member_id="alice", consent_marketing=True,
           properties={"utm_source": "wechat", "app_version": "7.1"}),
    browse("a04", "09:05", "m:alice", member_id="alice"),
    purchase("a05", "09:10", "m:alice", "o-a1", "created", 10_000, channel="app", member_id="alice"),
    purchase("a06", "09:11", "m:alice", "o-a1", "paid", 10_000, channel="app", member_id="alice"),
    wifi("a07", "12:00", "m:alice", "S1", rssi=-50),
    purchase("a09", "12:20:00.750", "m:alice", "o-a2", "paid", 5_000, store="S1", member_id="alice"),
    wifi("a08", "12:30", "m:alice", "S1", rssi=-55),
    event("share", "a10", "13:00", "m:alice", channel="app", member_id="alice", platform="wechat", target="sku-1"),
    wifi("b01", "00:00", "w:bobmac", "S2", kind="probe", rssi=-80),
    browse("b02", "10:00", "d:bob-phone", "xmas", device_id="bob-phone"),
    wifi("b03", "10:30", "d:bob-phone", "S1", kind="portal_login", rssi=-55, device_id="bob-phone"),
    wifi("b04", "10:30:40", "m:bob", "S1", rssi=-58),
    browse("b05", "10:40", "m:bob", member_id="bob", device_id="bob-phone", consent_marketing=False),
    purchase("b06", "10:45", "m:bob", "o-b1", "paid", 8_000, store="S1", member_id="bob"),
    wifi("b09", "10:50", "m:bob", "S1", rssi=-60),
    event("complaint", "b07", "15:00", "m:bob", channel="call_center", store_id="S1", member_id="bob",
          complaint_id="cs-1", category="service", severity="high", order_id="o-b1"),
    purchase("b08", "16:00", "m:bob", "o-b2", "paid", 1_000, channel="app", member_id="bob"),
    wifi("c01", "14:00", "p:carol", "S1", rssi=-65, phone_hash="carol-hash"),
    purchase("c03", "14:05", "p:carol", "o-c1", "created", 3_000, store="S1"),
    wifi("c02", "14:10", "p:carol", "S1", rssi=-60),
    event("share", "c04", "14:30", "p:carol", channel="app", platform="weibo", phone_hash="carol-hash"),
    browse("d01", "2026-11-01T10:00", "m:dave", channel="web", member_id="dave"),
    browse("e01", "20:00", "m:erin", "spring", channel="web", member_id="erin", late=True,
           ingested_at="2026-11-23T02:00"),
    purchase("e02", "20:30", "m:erin", "o-e1", "paid", 2_000, channel="web", member_id="erin", late=True,
             ingested_at="2026-11-23T02:00"),
    browse("z01", "2026-11-23T00:00", "m:frank", member_id="frank"),
    browse("g21", "18:00", "d:gina-tab", "spring", channel="web", device_id="gina-tab"),
    purchase("g22", "18:10", "d:gina-tab", "o-g1", "created", 4_000, channel="web", device_id="gina-tab"),
    browse("i01", "19:00", "d:ivan", "xmas", device_id="ivan"),
    wifi("g01", "16:00", "w:ghost", "S2", kind="probe", rssi=-85),
    wifi("h01", "17:00", "w:hank", "S1", kind="probe", rssi=-75),
    wifi("h02", "17:01", "w:hank", "S1", kind="probe", rssi=-74),
]
EVENT = {e["event_id"]: e for e in EVENTS}


def visit(visit_id, person, store, start, end, dwell_s, visit_class, state, emitted, max_rssi=-55):
    return {"state": state, "visit_id": visit_id, "person_id": person, "store_id": store, "absorbed_into": None,
            "start": ms(start), "end": ms(end), "dwell_s": dwell_s, "class": visit_class, "max_rssi": max_rssi,
            "connected": visit_class == "visitor", "ended_by_disassociate": False, "emitted_at": ms(emitted)}


def absorbed_visit(visit_id, into, person, store, emitted):
    return {"state": "absorbed", "visit_id": visit_id, "person_id": person, "store_id": store, "absorbed_into": into,
            "start": 0, "end": 0, "dwell_s": 0, "class": "passerby", "max_rssi": None, "connected": False,
            "ended_by_disassociate": False, "emitted_at": ms(emitted)}


VISITS: list[dict[str, Any]] = [
    visit("v-a0", "m:alice", "S1", "2026-11-20T14:00", "2026-11-20T14:20", 1200, "visitor", "closed", "2026-11-20T15:30"),
    visit("v-a1", "m:alice", "S1", "12:00", "12:00", 0, "passerby", "open", "12:00:05"),
    visit("v-a1b", "m:alice", "S1", "12:25", "12:25", 0, "passerby", "open", "12:25:05"),
    absorbed_visit("v-a1b", "v-a1", "m:alice", "S1", "12:30:05"),
    visit("v-a1", "m:alice", "S1", "12:00", "12:30", 1800, "visitor", "closed", "13:45"),
    visit("v-b0", "w:bobmac", "S2", "00:00", "00:00", 0, "passerby", "closed", "01:15", max_rssi=-80),
    visit("v-b1", "d:bob-phone", "S1", "10:30", "10:30", 0, "passerby", "open", "10:30:05"),
    visit("v-b1", "m:bob", "S1", "10:30", "10:50", 1200, "visitor", "closed", "12:05"),
    visit("v-c1", "p:carol", "S1", "14:00", "14:10", 600, "visitor", "closed", "15:25", max_rssi=-60),
    visit("v-g1", "w:ghost", "S2", "16:00", "16:00", 0, "passerby", "closed", "17:15", max_rssi=-85),
    visit("v-h1", "w:hank", "S1", "17:00", "17:01", 60, "passerby", "closed", "18:16", max_rssi=-74),
]


def session(session_id, person, start, end, state, emitted, revenue=0, **fields):
    record = {"state": state, "session_id": session_id, "person_id": person, "absorbed_into": None,
              "start": ms(start), "end": ms(end), "event_count": 1, "counts": {"browse": 1},
              "online_channels": ["app"], "offline_channels": [], "stores": [], "revenue_cents": revenue,
              "has_complaint": False, "has_share": False, "online_to_offline": False, "event_ids": ["x"],
              "emitted_at": ms(emitted)}
    record.update(fields)
    return record


SESSIONS: list[dict[str, Any]] = [
    session("s-a1", "m:alice", "09:00", "09:11", "open", "09:11:05"),
    session("s-a1", "m:alice", "09:00", "09:11", "closed", "10:41", revenue=10_000, event_count=4,
            counts={"browse": 2, "purchase": 2}, event_ids=["a03", "a04", "a05", "a06"]),
    session("s-b1", "d:bob-phone", "10:00", "10:00", "open", "10:00:05"),
    session("s-b2", "m:bob", "10:40", "10:45", "open", "10:45:05"),
    {**session("s-b2", "m:bob", "10:40", "10:45", "absorbed", "10:50:05"), "absorbed_into": "s-b1"},
    session("s-b1", "m:bob", "10:00", "10:50", "open", "10:50:05", revenue=8_000, online_to_offline=True,
            offline_channels=["pos", "wifi"], stores=["S1"]),
    # Closed and open of one batch (same emitted_at), the closed one first: the state rank decides.
    session("s-c1", "p:carol", "14:00", "14:30", "closed", "15:31", has_share=True),
    session("s-c1", "p:carol", "14:00", "14:30", "open", "15:31", has_share=True),
]

MERGES: list[dict[str, Any]] = [
    {"from_person": "w:bobmac", "to_person": "d:bob-phone", "at": ms("10:30"), "event_id": "b03"},
    {"from_person": "d:bob-phone", "to_person": "m:bob", "at": ms("10:40"), "event_id": "b05"},
]


def trigger(trigger_id, rule, person, at, store=None, kind="marketing", cause=(), payload=None, **fields):
    """A fired trigger as the sink gets it: Trigger.to_record(published_at) plus its outcome."""
    return {"trigger_id": trigger_id, "rule": rule, "rule_type": rule, "kind": kind, "person_id": person,
            "member_id": person[2:] if person.startswith("m:") else None, "store_id": store,
            "event_time": ms(at), "fired_at": ms(at), "cause_event_ids": sorted(cause),
            "payload": payload or ("BrowseThenVisitPayload", {"store_id": store or "", "skus": ["sku-1"],
                                                               "arrival": "visitor", "visit_id": "v"}),
            "published_at": ms(at) + 1_500, "outcome": "fired", "reason": "", **fields}


def suppression(rule, person, at, reason, store=None, trigger_id=None, cause=()):
    return {**trigger(trigger_id, rule, person, at, store, cause=cause), "published_at": None,
            "outcome": "suppressed", "reason": reason}


TRIGGERS: list[dict[str, Any]] = [
    trigger("t0", "welcome_member", "m:dave", "2026-11-01T10:00", cause=["d01"]),
    trigger("t1", "browse_then_visit", "m:alice", "12:00", store="S1", cause=["a03", "a07"]),
    trigger("t2", "welcome_member", "d:bob-phone", "10:30", store="S1", cause=["b03"]),
    trigger("t3", "complaint_alert", "m:bob", "15:00", store="S1", kind="service", cause=["b07"],
            payload=("ComplaintRecoveryPayload", {"complaint_id": "cs-1", "severity": "high", "store_id": "S1"})),
    trigger("t4", "browse_then_visit", "m:erin", "20:00", cause=["e01"]),
    suppression("browse_then_visit", "p:carol", "14:00", "consent", store="S1", trigger_id="tr-s2", cause=["c01"]),
    # An id-less suppression (a producer that sends none) gets a deterministic one.
    suppression("browse_then_visit", "m:bob", "15:05", "complaint_suppression", store="S1", cause=["b07"]),
]

# Copies delivered twice: each must count once everywhere.
DUPLICATES = {
    "events": [{**EVENT[i], "ingested_at": EVENT[i]["ingested_at"] + 60_000}
               for i in ("a03", "a06", "a09", "a10", "b06", "b07", "c01", "e02", "h01")],
    "store_visits": [v for v in VISITS if v["visit_id"] in ("v-c1", "v-h1", "v-b1")],
    "sessions": [s for s in SESSIONS if s["session_id"] == "s-a1"],
    "triggers_log": [TRIGGERS[1], TRIGGERS[6]],
}


# --- answers, by hand (see the table above) -------------------------------------------------------

EXPECTED: dict[str, list[dict[str, Any]]] = {
    # visits started on 11-22, latest versions, v-a1b absorbed: S1 v-a1, v-b1, v-c1 visitors, v-h1 passerby.
    "footfall": [
        {"store_id": "S1", "visitors": 3, "passersby": 1, "capture_rate": 0.75},
        {"store_id": "S2", "visitors": 0, "passersby": 2, "capture_rate": 0.0},
    ],
    # visitor dwell: v-c1 600 s, v-b1 1200 s, v-a1 1800 s.
    "dwell": [
        {"store_id": "S1", "dwell_bucket": "5-15 min", "bucket_from_s": 300, "visits": 1},
        {"store_id": "S1", "dwell_bucket": "15-30 min", "bucket_from_s": 900, "visits": 1},
        {"store_id": "S1", "dwell_bucket": "30-60 min", "bucket_from_s": 1800, "visits": 1},
    ],
    # Alice visited S1 on 11-20 (repeat); Bob and Carol are new.
    "new_vs_repeat": [{"store_id": "S1", "visiting_persons": 3, "new_visitors": 2, "repeat_visitors": 1}],
    # browsers: alice, bob (d:bob-phone's 10:00 page view, visit at 10:30 as m:bob), erin, gina, ivan.
    "browse_to_visit": [{"browsing_persons": 5, "visiting_persons": 2, "conversion_rate": 0.4}],
    # v-a1 has a09 (12:20, S1), v-b1 has b06 (10:45, S1); Carol only created an order.
    "visit_to_purchase": [{"store_id": "S1", "visits": 3, "converted_visits": 2, "conversion_rate": 0.6667}],
    "funnel": [
        {"scope": "all", "campaign": "", "page_views": 7, "browsing_persons": 5, "ordering_persons": 4,
         "paying_persons": 3, "order_rate": 0.8, "paid_rate": 0.75, "conversion_rate": 0.6},
        {"scope": "campaign", "campaign": "", "page_views": 2, "browsing_persons": 2, "ordering_persons": 2,
         "paying_persons": 2, "order_rate": 1.0, "paid_rate": 1.0, "conversion_rate": 1.0},
        {"scope": "campaign", "campaign": "spring", "page_views": 2, "browsing_persons": 2, "ordering_persons": 2,
         "paying_persons": 1, "order_rate": 1.0, "paid_rate": 0.5, "conversion_rate": 0.5},
        {"scope": "campaign", "campaign": "xmas", "page_views": 3, "browsing_persons": 3, "ordering_persons": 2,
         "paying_persons": 2, "order_rate": 0.6667, "paid_rate": 1.0, "conversion_rate": 0.6667},
    ],
    # paid: a06 app 10000, b08 app 1000, e02 web 2000, a09 S1 pos 5000, b06 S1 pos 8000.
    "gmv": [
        {"store_id": "", "channel": "app", "gmv_cents": 11_000, "orders": 2, "aov_cents": 5500.0},
        {"store_id": "", "channel": "web", "gmv_cents": 2_000, "orders": 1, "aov_cents": 2000.0},
        {"store_id": "S1", "channel": "pos", "gmv_cents": 13_000, "orders": 2, "aov_cents": 6500.0},
    ],
    # sharers alice, carol; payers alice, bob, erin.
    "share_rate": [{"sharing_persons": 2, "paying_persons": 3, "share_rate": 0.6667}],
    "complaint_rate": [{"complaints": 1, "paid_orders": 5, "complaints_per_100_paid_orders": 20.0}],
    # members seen before 11-23: alice, bob, dave, erin (frank's first event is at 11-23T00:00); active: 3.
    "data_heat": [{"active_members": 3, "members": 4, "heat_pct": 75.0}],
    "triggers": [
        {"rule": "browse_then_visit", "kind": "marketing", "fired": 2, "suppressed": 2},
        {"rule": "complaint_alert", "kind": "service", "fired": 1, "suppressed": 0},
        {"rule": "welcome_member", "kind": "marketing", "fired": 1, "suppressed": 0},
    ],
    # a09 <- t1, e02 <- t4; b06 and b08 <- t2 (sent to d:bob-phone; t3 is a service alert); a06 precedes t1.
    "attributed_conversions": [
        {"rule": "browse_then_visit", "attributed_conversions": 2, "attributed_revenue_cents": 7_000},
        {"rule": "welcome_member", "attributed_conversions": 2, "attributed_revenue_cents": 9_000},
    ],
    "store_minutes": [
        {"store_id": "S1", "minute": "10:30", "visitors": 1, "unique_persons": 1},  # b03 d:bob-phone + b04 m:bob
        {"store_id": "S1", "minute": "10:45", "unique_persons": 1, "paid_purchases": 1, "paid_revenue_cents": 8_000},
        {"store_id": "S1", "minute": "10:50", "unique_persons": 1},
        {"store_id": "S1", "minute": "12:00", "visitors": 1, "unique_persons": 1},
        {"store_id": "S1", "minute": "12:20", "unique_persons": 1, "paid_purchases": 1, "paid_revenue_cents": 5_000},
        {"store_id": "S1", "minute": "12:30", "unique_persons": 1},
        {"store_id": "S1", "minute": "14:00", "visitors": 1, "unique_persons": 1},
        {"store_id": "S1", "minute": "14:05", "unique_persons": 1},
        {"store_id": "S1", "minute": "14:10", "unique_persons": 1},
        {"store_id": "S1", "minute": "15:00", "unique_persons": 1, "complaints": 1},
        {"store_id": "S1", "minute": "17:00", "passersby": 1, "unique_persons": 1},
        {"store_id": "S1", "minute": "17:01", "unique_persons": 1},
        {"store_id": "S2", "minute": "00:00", "passersby": 1, "unique_persons": 1},
        {"store_id": "S2", "minute": "16:00", "passersby": 1, "unique_persons": 1},
    ],
    "person_profiles": [
        {"person_id": "d:gina-tab", "first_seen_ms": ms("18:00"), "last_seen_ms": ms("18:10"), "visits": 0,
         "lifetime_paid_cents": 0, "last_store": "", "consent_marketing": None},
        {"person_id": "d:ivan", "first_seen_ms": ms("19:00"), "last_seen_ms": ms("19:00"), "visits": 0,
         "lifetime_paid_cents": 0, "last_store": "", "consent_marketing": None},
        {"person_id": "m:alice", "first_seen_ms": ms("2026-11-20T14:00"), "last_seen_ms": ms("13:00"), "visits": 2,
         "lifetime_paid_cents": 15_000, "last_store": "S1", "consent_marketing": 1},
        {"person_id": "m:bob", "first_seen_ms": ms("00:00"), "last_seen_ms": ms("16:00"), "visits": 1,
         "lifetime_paid_cents": 9_000, "last_store": "S1", "consent_marketing": 0},
        {"person_id": "m:erin", "first_seen_ms": ms("20:00"), "last_seen_ms": ms("20:30"), "visits": 0,
         "lifetime_paid_cents": 2_000, "last_store": "", "consent_marketing": None},
        {"person_id": "p:carol", "first_seen_ms": ms("14:00"), "last_seen_ms": ms("14:30"), "visits": 1,
         "lifetime_paid_cents": 0, "last_store": "S1", "consent_marketing": None},
        {"person_id": "w:ghost", "first_seen_ms": ms("16:00"), "last_seen_ms": ms("16:00"), "visits": 0,
         "lifetime_paid_cents": 0, "last_store": "S2", "consent_marketing": None},
        {"person_id": "w:hank", "first_seen_ms": ms("17:00"), "last_seen_ms": ms("17:01"), "visits": 0,
         "lifetime_paid_cents": 0, "last_store": "S1", "consent_marketing": None},
    ],
}

_MINUTE_ZEROS = {"visitors": 0, "passersby": 0, "unique_persons": 0, "paid_purchases": 0, "paid_revenue_cents": 0,
                 "shares": 0, "complaints": 0}


def expected_store_minutes() -> list[dict[str, Any]]:
    """`store_minutes` rows in full: zeros filled in, minutes as UTC datetimes (as the drivers return them)."""
    return [{**_MINUTE_ZEROS, **row,
             "minute": datetime(2026, 11, 22, *map(int, row["minute"].split(":")), tzinfo=timezone.utc)}
            for row in EXPECTED["store_minutes"]]


# With --store S1: only what happened at S1.
EXPECTED_S1: dict[str, list[dict[str, Any]]] = {
    "footfall": EXPECTED["footfall"][:1],
    "gmv": EXPECTED["gmv"][2:],
    "share_rate": [{"sharing_persons": 0, "paying_persons": 2, "share_rate": 0.0}],  # shares carry no store
    "complaint_rate": [{"complaints": 1, "paid_orders": 2, "complaints_per_100_paid_orders": 50.0}],
    "triggers": [
        {"rule": "browse_then_visit", "kind": "marketing", "fired": 1, "suppressed": 2},
        {"rule": "complaint_alert", "kind": "service", "fired": 1, "suppressed": 0},
        {"rule": "welcome_member", "kind": "marketing", "fired": 1, "suppressed": 0},
    ],
    "attributed_conversions": [  # only a09 and b06 were paid at S1
        {"rule": "browse_then_visit", "attributed_conversions": 1, "attributed_revenue_cents": 5_000},
        {"rule": "welcome_member", "attributed_conversions": 1, "attributed_revenue_cents": 8_000},
    ],
}

# Before the merges are recorded, d:bob-phone and w:bobmac are persons of their own.
EXPECTED_BEFORE_MERGES: dict[str, list[dict[str, Any]]] = {
    # browsers alice, d:bob-phone, m:bob, erin, gina, ivan; only alice's visit follows her page view
    # (m:bob browsed at 10:40, after his visit started at 10:30).
    "browse_to_visit": [{"browsing_persons": 6, "visiting_persons": 1, "conversion_rate": 0.1667}],
    # t2 was sent to d:bob-phone, the payments are m:bob's.
    "attributed_conversions": [
        {"rule": "browse_then_visit", "attributed_conversions": 2, "attributed_revenue_cents": 7_000},
    ],
}


# --- databases on both engines ---------------------------------------------------------------------

ENGINES = ("clickhouse-18.16", "chdb")


def databases(stack: Any, modern_clickhouse: Any):
    """A factory of fresh, not yet migrated databases on either engine; all dropped at the end.

    `make(engine)` returns (client, database name): a clickhouse-driver Client on the Debian server
    (connected to `default`) or a ChdbClient over the suite's chdb session.
    """
    import uuid

    from clickhouse_driver import Client

    from sinks.chdb_client import ChdbClient

    made: list[tuple[Any, str]] = []

    def make(engine: str) -> tuple[Any, str]:
        name = f"wh_{uuid.uuid4().hex[:10]}"
        if engine == "clickhouse-18.16":
            client = Client(**stack.clickhouse_client_kwargs(database="default"))
        elif engine == "chdb":
            client = ChdbClient(modern_clickhouse.session)
        else:
            raise ValueError(engine)
        made.append((client, name))
        return client, name

    yield make
    for client, name in made:
        client.execute(f"DROP DATABASE IF EXISTS {name}")
        client.disconnect()


def load(client: Any, *, duplicates: bool = True, merges: bool = True) -> None:
    """Insert the dataset through the sink's own writer (the same inserts on both engines)."""
    from sinks.writer import apply_person_merges, insert

    insert(client, "events", EVENTS)
    insert(client, "store_visits", VISITS)
    insert(client, "sessions", SESSIONS)
    insert(client, "triggers_log", TRIGGERS)
    if merges:  # as the stream delivers them: two batches
        apply_person_merges(client, MERGES[:1])
        apply_person_merges(client, MERGES[1:])
    if duplicates:
        for table, records in DUPLICATES.items():
            insert(client, table, records)


def same_rows(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> bool:
    """Equal row for row, floats to 4 decimals (both engines round in SQL)."""
    if len(actual) != len(expected):
        return False
    for got, want in zip(actual, expected):
        if set(got) != set(want):
            return False
        for key, value in want.items():
            if isinstance(value, float) and got[key] is not None:
                if abs(got[key] - value) > 1e-4:
                    return False
            elif got[key] != value:
                return False
    return True
