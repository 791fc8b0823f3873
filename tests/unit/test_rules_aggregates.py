"""Aggregate rules (store_complaint_spike, lapsed_member): triggers built from their query's result rows."""

from __future__ import annotations

import pytest
from test_rules_harness import DAY, MINUTE, T0, Pipeline, browse, config

from pipeline.rules import SERVICE, RuleEngine, trigger_id

SPIKE = {"type": "store_complaint_spike", "params": {"window_min": 15, "threshold": 3}}
LAPSED = {"type": "lapsed_member", "params": {"days": 30}}


def spike_row(ids, end=T0 + 15 * MINUTE, store="S1"):
    return {"store_id": store, "window_start": end - 15 * MINUTE, "window_end": end, "complaints": len(ids),
            "complaint_event_ids": list(ids)}


def lapsed_row(evaluated_at, last=T0, person="m:42"):
    return {"person_id": person, "member_id": person[2:], "last_activity_at": last, "last_event_id": "pos-77",
            "evaluated_at": evaluated_at, "store_id": "S1"}


def test_spike_at_the_threshold_alerts_the_store_ignoring_quiet_hours():
    engine = RuleEngine(config(SPIKE, quiet_hours={"start": "00:00", "end": "23:59", "mode": "drop"}))
    (trigger,) = engine.on_aggregate("store_complaint_spike", [spike_row(["c1", "c2", "c3"])]).triggers
    assert (trigger.kind, trigger.person_id, trigger.store_id) == (SERVICE, None, "S1")
    assert trigger.cause_event_ids == ("c1", "c2", "c3")
    assert trigger.payload == {"store_id": "S1", "complaints": 3, "threshold": 3, "window_start": T0,
                               "window_end": T0 + 15 * MINUTE}


def test_spike_under_the_threshold_is_silent():
    engine = RuleEngine(config(SPIKE))
    assert engine.on_aggregate("store_complaint_spike", [spike_row(["c1", "c2"])]).triggers == []


def test_the_same_spike_seen_by_the_next_runs_alerts_once():
    engine = RuleEngine(config(SPIKE))
    first = engine.on_aggregate("store_complaint_spike", [spike_row(["c1", "c2", "c3"])])
    later = engine.on_aggregate("store_complaint_spike", [spike_row(["c1", "c2", "c3", "c4"], end=T0 + 16 * MINUTE)])
    assert len(first.triggers) == 1 and later.triggers == []


def test_a_spike_that_goes_on_after_its_first_complaints_left_the_window_alerts_again():
    engine = RuleEngine(config(SPIKE))
    engine.on_aggregate("store_complaint_spike", [spike_row(["c1", "c2", "c3"])])
    (again,) = engine.on_aggregate("store_complaint_spike", [spike_row(["c4", "c5", "c6"], end=T0 + 40 * MINUTE)]).triggers
    assert again.trigger_id == trigger_id("store_complaint_spike", ["c4", "c5", "c6"])


def test_a_row_without_the_needed_columns_says_what_the_query_must_return():
    engine = RuleEngine(config(SPIKE))
    with pytest.raises(ValueError, match="result row lacks complaint_event_ids; its query must return store_id"):
        engine.on_aggregate("store_complaint_spike", [{"store_id": "S1", "window_start": 0, "window_end": 0,
                                                       "complaints": 9}])


def test_lapsed_member_gets_one_win_back_trigger_per_lapse():
    engine = RuleEngine(config(LAPSED, quiet_hours=None))
    (trigger,) = engine.on_aggregate("lapsed_member", [lapsed_row(T0 + 31 * DAY)]).triggers
    assert (trigger.person_id, trigger.member_id, trigger.store_id) == ("m:42", "42", "S1")
    assert (trigger.event_time, trigger.fired_at) == (T0 + 30 * DAY, T0 + 31 * DAY)
    assert trigger.payload == {"member_id": "42", "last_activity_at": T0, "days_inactive": 31}
    assert trigger.trigger_id == trigger_id("lapsed_member", ["pos-77"])
    assert engine.on_aggregate("lapsed_member", [lapsed_row(T0 + 32 * DAY)]).triggers == []


def test_lapsed_edge_exactly_n_days():
    engine = RuleEngine(config(LAPSED, quiet_hours=None))
    assert engine.on_aggregate("lapsed_member", [lapsed_row(T0 + 30 * DAY - 1)]).triggers == []
    assert len(engine.on_aggregate("lapsed_member", [lapsed_row(T0 + 30 * DAY)]).triggers) == 1


def test_lapsed_member_is_a_marketing_rule_under_the_controls():
    p = Pipeline(config(LAPSED, quiet_hours=None))
    p.feed(browse("b1", 0, member_id="42", consent_marketing=False))
    out = p.engine.on_aggregate("lapsed_member", [lapsed_row(T0 + 31 * DAY)])
    assert out.triggers == [] and [s.reason for s in out.suppressed] == ["consent"]


def test_lapsed_in_quiet_hours_is_held_to_the_opening():
    engine = RuleEngine(config(LAPSED))
    night = T0 + 31 * DAY + 13 * 60 * MINUTE  # 23:00 in Shanghai
    out = engine.on_aggregate("lapsed_member", [lapsed_row(night)])
    assert out.triggers == [] and len(out.held) == 1
    assert len(engine.advance(out.held[0].release_at).triggers) == 1
