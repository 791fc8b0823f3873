"""Trigger rules in the running worker, on the real broker: topics, the decision log, restarts.

Event times are on a past day at Shanghai office hours (the default quiet hours are 22:00-08:00
in Asia/Shanghai), so marketing triggers are published at once.
"""

from __future__ import annotations

import time

import pytest

from agents.changelog import read_to_end
from pipeline.rules import trigger_id
from pipeline.serde import EventCodec
from pipeline.topics import TRIGGER_LOG
from tests.conftest import wait_for
from tests.integration.test_journey_agent import base, send

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
# Yesterday 03:00 UTC = 11:00 in Shanghai.
T0 = (int(time.time() * 1000) // DAY - 1) * DAY + 3 * HOUR
NOTHING_LATE = {"O2O_ALLOWED_LATENESS_MS": str(DAY)}


def triggers(settings, rule: str) -> list[dict]:
    codec = EventCodec()
    return [codec.decode_output(m.value())[1] for m in read_to_end(settings, settings.topic(f"triggers.{rule}"))]


def decisions(settings) -> list[dict]:
    codec = EventCodec()
    return [d for m in read_to_end(settings, settings.topic(TRIGGER_LOG)) for d in codec.decode_outputs(m.value())[1]]


def browse(event_id: str, at: int, **who) -> dict:
    return base(event_id, "browse", at, "app", page="product", sku=who.pop("sku", "sku-1"), **who)


def portal_login(event_id: str, at: int, store: str, **who) -> dict:
    return base(event_id, "wifi_checkin", at, "wifi", kind="portal_login", store_id=store, rssi=-45, **who)


def test_browse_then_visit_fires_once_with_the_browsed_skus_and_its_latency_is_measured(
        pipeline_settings, start_worker):
    worker = start_worker(**NOTHING_LATE)
    send(pipeline_settings, [
        browse("b1", T0, member_id="42", device_id="d-42", sku="sku-red"),
        browse("b2", T0 + MINUTE, member_id="42", device_id="d-42", sku="sku-blue"),
    ])
    wait_for(lambda: worker.total("o2o_journey_events_total") == 2, 90, "the browses processed")
    send(pipeline_settings, [portal_login("w1", T0 + HOUR, "s-1", member_id="42", wifi_mac_hash="c" * 64)])

    fired = wait_for(lambda: triggers(pipeline_settings, "browse_then_visit"), 60, "the coupon trigger")
    assert len(fired) == 1
    coupon = fired[0]
    assert (coupon["trigger_id"], coupon["cause_event_ids"]) == (trigger_id("browse_then_visit", ["w1"]), ["w1"])
    assert (coupon["person_id"], coupon["member_id"], coupon["store_id"]) == ("m:42", "42", "s-1")
    assert coupon["payload"]["skus"] == ["sku-blue", "sku-red"]
    assert coupon["kind"] == "marketing" and coupon["published_at"] is not None
    logged = [d for d in decisions(pipeline_settings) if d["rule"] == "browse_then_visit"]
    assert [(d["outcome"], d["trigger_id"]) for d in logged] == [("fired", coupon["trigger_id"])]
    wait_for(lambda: worker.total("o2o_trigger_latency_seconds_count") == 1, 30, "the latency observed")
    assert 0 < worker.total("o2o_trigger_latency_seconds_sum") < 30

    # The same check-in sent again (a gateway retry) is a duplicate: no second coupon.
    send(pipeline_settings, [portal_login("w1", T0 + HOUR, "s-1", member_id="42", wifi_mac_hash="c" * 64),
                             browse("b3", T0 + HOUR + MINUTE, member_id="7")])
    wait_for(lambda: worker.total("o2o_journey_events_total") == 4, 60, "the next events processed")
    assert len(triggers(pipeline_settings, "browse_then_visit")) == 1


def test_a_complaint_alerts_at_once_and_pauses_marketing_which_is_logged_as_suppressed(
        pipeline_settings, start_worker):
    worker = start_worker(**NOTHING_LATE)
    send(pipeline_settings, [
        browse("b1", T0, member_id="9", sku="sku-1"),
        base("c1", "complaint", T0 + MINUTE, "app", member_id="9", complaint_id="k-1", category="service",
             severity="high", store_id="s-2"),
    ])
    alert = wait_for(lambda: triggers(pipeline_settings, "complaint_recovery"), 60, "the service alert")[0]
    assert (alert["kind"], alert["store_id"], alert["payload"]["severity"]) == ("service", "s-2", "high")
    wait_for(lambda: worker.total("o2o_journey_events_total") == 2, 60, "the complaint processed")

    send(pipeline_settings, [portal_login("w1", T0 + HOUR, "s-2", member_id="9", wifi_mac_hash="d" * 64)])
    suppressed = wait_for(lambda: [d for d in decisions(pipeline_settings) if d["outcome"] == "suppressed"],
                          60, "the suppressed coupon in the decision log")
    assert [(d["rule"], d["person_id"], d["reason"]) for d in suppressed] == [
        ("browse_then_visit", "m:9", "complaint_suppression")]
    assert triggers(pipeline_settings, "browse_then_visit") == []
    assert worker.total('o2o_triggers_suppressed_total{reason="complaint_suppression",rule="browse_then_visit"}') == 1


@pytest.mark.timeout(240)
def test_a_pending_share_invite_survives_kill_9_and_fires_once_with_its_id(pipeline_settings, start_worker):
    first = start_worker(**NOTHING_LATE)
    send(pipeline_settings, [base("p1", "purchase", T0, "pos", member_id="5", order_id="o-1", status="paid",
                                  amount_cents=12_000, currency="CNY", store_id="s-1")])
    wait_for(lambda: first.total("o2o_journey_events_total") == 1, 90, "the purchase processed")
    first.stop(kill=True)

    second = start_worker(**NOTHING_LATE)
    # Event time moves past the invite's due time (purchase + 2 h) by another person's event.
    send(pipeline_settings, [browse("b9", T0 + 2 * HOUR + MINUTE, member_id="77")])
    invites = wait_for(lambda: triggers(pipeline_settings, "share_invite"), 90, "the share invite")
    assert [(t["trigger_id"], t["person_id"], t["fired_at"]) for t in invites] == [
        (trigger_id("share_invite", ["p1"]), "m:5", T0 + 2 * HOUR)]
    assert invites[0]["payload"]["order_id"] == "o-1"

    send(pipeline_settings, [browse("b10", T0 + 3 * HOUR, member_id="77")])
    wait_for(lambda: second.total("o2o_journey_events_total") == 2, 60, "the next event processed")
    assert len(triggers(pipeline_settings, "share_invite")) == 1
