"""complaint_recovery: any complaint -> immediate service alert, whatever the marketing controls."""

from __future__ import annotations

from test_rules_harness import DAY, T0, Pipeline, browse, checkin, complaint, config, shanghai

from pipeline.rules import SERVICE, trigger_id

RECOVERY = {"type": "complaint_recovery", "params": {"suppress_marketing_days": 7}}
BTV = {"type": "browse_then_visit"}


def test_complaint_fires_an_immediate_service_alert_with_store_severity_and_order():
    p = Pipeline(config(RECOVERY))
    out = p.feed(complaint("c1", 5, member_id="42", store_id="S1", severity="high", order_id="o-9",
                           complaint_id="cp-1", category="product_quality"))
    (trigger,) = out.triggers
    assert (trigger.kind, trigger.person_id, trigger.store_id, trigger.fired_at) == (SERVICE, "m:42", "S1", T0 + 300_000)
    assert trigger.payload == {"complaint_id": "cp-1", "category": "product_quality", "severity": "high",
                               "order_id": "o-9", "store_id": "S1", "channel": "call_center"}
    assert trigger.trigger_id == trigger_id("complaint_recovery", ["c1"])


def test_service_alerts_ignore_consent_quiet_hours_cooldown_and_daily_cap():
    p = Pipeline(config(RECOVERY, daily_cap=1, quiet_hours={"start": "22:00", "end": "08:00", "mode": "drop"}))
    night = shanghai(0, 23, 30)
    p.feed(*[complaint(f"c{i}", night + i, member_id="42", consent_marketing=False) for i in range(4)])
    assert len(p.fired()) == 4 and p.out.suppressed == []


def test_duplicate_complaint_event_alerts_once():
    p = Pipeline(config(RECOVERY))
    p.feed(complaint("c1", 0, member_id="42"), complaint("c1", 0, member_id="42"))
    p.feed(complaint("c1", 0, member_id="42"))
    assert len(p.fired()) == 1


def test_complaint_pauses_marketing_for_the_person_only():
    p = Pipeline(config(RECOVERY, BTV, quiet_hours=None))
    p.feed(complaint("c1", 0, member_id="42"),
           browse("b1", 10, member_id="42", sku="sku-1"), checkin("v1", 60, "associate", member_id="42", mac="m42"),
           browse("b2", 10, member_id="43", sku="sku-1"), checkin("v2", 60, "associate", member_id="43", mac="m43"))
    assert [t.person_id for t in p.fired("browse_then_visit")] == ["m:43"]
    assert [(s.trigger.person_id, s.reason) for s in p.out.suppressed] == [("m:42", "complaint_suppression")]


def test_suppression_ends_exactly_suppress_marketing_days_after_the_complaint():
    p = Pipeline(config(RECOVERY, BTV, quiet_hours=None))
    p.feed(complaint("c1", 0, member_id="42"), browse("b1", 1, member_id="42", sku="sku-1"),
           checkin("v1", 0, "associate", member_id="42", occurred_at=T0 + 7 * DAY - 1))
    assert p.reasons() == ["complaint_suppression"]
    p.feed(browse("b2", 0, member_id="42", sku="sku-2", occurred_at=T0 + 7 * DAY - 10),
           checkin("v2", 0, "associate", member_id="42", store="S2", occurred_at=T0 + 7 * DAY))
    assert [t.cause_event_ids for t in p.fired("browse_then_visit")] == [("v2",)]


def test_without_complaint_recovery_enabled_complaints_suppress_nothing():
    p = Pipeline(config({**RECOVERY, "enabled": False}, BTV, quiet_hours=None))
    p.feed(complaint("c1", 0, member_id="42"), browse("b1", 1, member_id="42", sku="sku-1"),
           checkin("v1", 60, "associate", member_id="42"))
    assert [t.rule for t in p.fired()] == ["browse_then_visit"]
