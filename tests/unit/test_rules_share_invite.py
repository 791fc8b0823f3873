"""share_invite: N hours after a paid purchase, unless the person shared or complained -> invite.

Timers run in event time, survive restarts (snapshot and changelog) and fire on `advance` when no
further events come.
"""

from __future__ import annotations

import json

from test_rules_harness import HOUR, NO_QUIET, T0, Pipeline, at, browse, complaint, config, purchase, share

from pipeline.rules import RuleEngine, trigger_id

INVITE = {"type": "share_invite", "params": {"delay_h": 2, "points": 50}}
DUE = T0 + 2 * HOUR


def pipeline(**controls) -> Pipeline:
    return Pipeline(config(INVITE, **{**NO_QUIET, **controls}))


def test_invite_fires_when_event_time_reaches_two_hours_after_the_paid_purchase():
    p = pipeline()
    p.feed(purchase("p1", 0, 12_000, member_id="42", store_id="S1", order_id="o-9"),
           browse("b1", 0, member_id="7", occurred_at=DUE - 1))
    assert p.fired() == []
    p.feed(browse("b2", 0, member_id="7", occurred_at=DUE))
    (trigger,) = p.fired()
    assert (trigger.person_id, trigger.store_id, trigger.event_time, trigger.fired_at) == ("m:42", "S1", T0, DUE)
    assert trigger.payload == {"order_id": "o-9", "amount_cents": 12_000, "currency": "CNY", "purchased_at": T0,
                               "points": 50}
    assert trigger.trigger_id == trigger_id("share_invite", ["p1"])


def test_quiet_stream_fires_the_invite_on_advance():
    p = pipeline()
    p.feed(purchase("p1", 0, 100, member_id="42"))
    assert p.advance_to(DUE - 1).triggers == []
    assert [t.fired_at for t in p.advance_to(DUE).triggers] == [DUE]
    assert p.advance_to(DUE + HOUR).triggers == []


def test_a_share_before_the_due_time_cancels_the_invite():
    p = pipeline()
    p.feed(purchase("p1", 0, 100, member_id="42"), share("s1", 60, member_id="42"))
    p.advance_to(DUE + HOUR)
    assert p.fired() == [] and p.out.suppressed == []
    assert p.engine.stats["share_invites_cancelled"] == 1


def test_a_share_exactly_at_the_due_time_cancels_it():
    p = pipeline()
    p.feed(purchase("p1", 0, 100, member_id="42"), share("s1", 0, member_id="42", occurred_at=DUE))
    p.advance_to(DUE + HOUR)
    assert p.fired() == []


def test_a_share_after_the_due_time_does_not_cancel_it():
    p = pipeline()
    p.feed(purchase("p1", 0, 100, member_id="42"), share("s1", 0, member_id="42", occurred_at=DUE + 1))
    assert len(p.fired()) == 1


def test_a_complaint_since_the_purchase_cancels_it():
    p = pipeline()
    p.feed(purchase("p1", 0, 100, member_id="42"), complaint("c1", 30, member_id="42"))
    p.advance_to(DUE + HOUR)
    assert p.fired("share_invite") == []


def test_a_share_before_the_purchase_does_not_cancel_it():
    p = pipeline()
    p.feed(share("s1", 0, member_id="42"), purchase("p1", 1, 100, member_id="42"))
    p.advance_to(DUE + HOUR)
    assert len(p.fired()) == 1


def test_a_late_purchase_sees_a_share_that_arrived_before_it():
    p = pipeline()
    p.feed(share("s1", 30, member_id="42"), purchase("p1", 0, 100, member_id="42"))
    p.advance_to(DUE + HOUR)
    assert p.fired() == []


def test_unpaid_purchase_starts_no_timer():
    p = pipeline()
    p.feed(purchase("p1", 0, 100, member_id="42", status="created"))
    p.advance_to(DUE + HOUR)
    assert p.fired() == [] and p.engine.pending_timers() == []


def test_duplicate_purchase_event_gives_one_invite():
    p = pipeline()
    p.feed(purchase("p1", 0, 100, member_id="42"), purchase("p1", 0, 100, member_id="42"))
    p.feed(purchase("p1", 0, 100, member_id="42"))
    p.advance_to(DUE + HOUR)
    p.feed(purchase("p1", 0, 100, member_id="42"))  # a replay after it fired
    p.advance_to(DUE + 2 * HOUR)
    assert len(p.fired()) == 1 and p.engine.stats["duplicate_causes"] == 3


def test_two_purchases_give_two_candidates_and_the_cooldown_keeps_one():
    p = pipeline()
    p.feed(purchase("p1", 0, 100, member_id="42"), purchase("p2", 30, 100, member_id="42"))
    p.advance_to(DUE + HOUR)
    assert [t.cause_event_ids for t in p.fired()] == [("p1",)]
    assert p.reasons() == ["cooldown"]


def test_restart_from_snapshot_in_the_middle_of_a_pending_invite_fires_it_once_with_the_same_id():
    uninterrupted = pipeline()
    uninterrupted.feed(purchase("p1", 0, 100, member_id="42"))
    before = pipeline()
    before.feed(purchase("p1", 0, 100, member_id="42"))
    state = json.loads(json.dumps(before.engine.snapshot()))  # what a changelog would carry

    restarted = RuleEngine.restore(state, before.engine.config)
    assert [t.trigger_id for t in restarted.pending_timers()] == [trigger_id("share_invite", ["p1"])]
    assert restarted.advance(DUE - 1).triggers == []
    fired = restarted.advance(DUE).triggers
    assert fired == uninterrupted.engine.advance(DUE).triggers and len(fired) == 1
    assert restarted.advance(DUE + 5 * HOUR).triggers == []


def test_restart_from_the_changelog_keeps_the_timer_and_the_share_that_cancels_it():
    p = Pipeline(config(INVITE, **NO_QUIET), track_changes=True)
    changelog = []
    p.feed(purchase("p1", 0, 100, member_id="42"))
    changelog += p.engine.drain_changes()
    p.feed(share("s1", 60, member_id="42"))
    changelog += p.engine.drain_changes()
    restarted = RuleEngine.restore(json.loads(json.dumps(changelog)), p.engine.config)
    assert restarted.advance(DUE + HOUR).triggers == []
    assert restarted.stats["share_invites_cancelled"] == 1


def test_restart_after_the_invite_fired_does_not_fire_it_again():
    p = Pipeline(config(INVITE, **NO_QUIET), track_changes=True)
    p.feed(purchase("p1", 0, 100, member_id="42"))
    p.advance_to(DUE)
    restarted = RuleEngine.restore(p.engine.drain_changes(), p.engine.config)
    pipeline_after = Pipeline(restarted.config, engine=restarted, journey=p.journey)
    pipeline_after.feed(purchase("p1", 0, 100, member_id="42"))  # the input replayed after the restart
    assert restarted.advance(DUE + HOUR).triggers == []


def test_invite_due_in_quiet_hours_is_held_until_eight_and_keeps_its_id():
    p = pipeline(quiet_hours={"start": "22:00", "end": "08:00", "mode": "hold"})
    # 21:00 Shanghai = 13:00Z; due 23:00 local.
    purchase_at = T0 + 11 * HOUR
    p.feed(purchase("p1", 0, 100, member_id="42", occurred_at=purchase_at))
    out = p.advance_to(purchase_at + 2 * HOUR)
    assert out.triggers == [] and len(out.held) == 1
    opening = T0 + 22 * HOUR  # 08:00 next day in Shanghai = 00:00Z
    assert out.held[0].release_at == opening
    assert p.advance_to(opening - 1).triggers == []
    (trigger,) = p.advance_to(opening).triggers
    assert trigger.fired_at == opening and trigger.trigger_id == trigger_id("share_invite", ["p1"])


def test_pending_invite_follows_a_person_merge():
    p = pipeline()
    p.feed(purchase("p1", 0, 100, device_id="d-1"), browse("b1", 30, device_id="d-1", member_id="42"))
    (trigger,) = p.advance_to(DUE).triggers
    assert (trigger.person_id, trigger.member_id) == ("m:42", "42")


def test_finish_fires_pending_invites_at_their_due_time():
    p = pipeline()
    p.feed(purchase("p1", 0, 100, member_id="42"))
    out = p.close_all()
    assert [t.fired_at for t in out.triggers] == [DUE]
    assert p.engine.watermark_ms == at(120)
