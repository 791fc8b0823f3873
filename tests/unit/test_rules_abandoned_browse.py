"""abandoned_browse: a closed session with >= K browses of one sku and no paid purchase -> retarget."""

from __future__ import annotations

from test_rules_harness import NO_QUIET, T0, Pipeline, browse, config, person_state, purchase

from pipeline.rules import trigger_id

ABANDONED = {"type": "abandoned_browse", "params": {"min_browses": 3}}
GAP = 30 * 60_000


def pipeline() -> Pipeline:
    return Pipeline(config(ABANDONED, **NO_QUIET))


def browses(sku: str, minutes, member: str = "42", prefix: str = "b") -> list[dict]:
    return [browse(f"{prefix}{i}", m, member_id=member, sku=sku) for i, m in enumerate(minutes)]


def test_three_browses_of_one_sku_without_purchase_fire_when_the_session_closes():
    p = pipeline()
    p.feed(*browses("sku-1", [0, 2, 4]), browse("x", 5, member_id="42", sku="sku-2"))
    assert p.fired() == []  # the session is still open
    p.close_all()
    (trigger,) = p.fired()
    assert trigger.payload["sku"] == "sku-1" and trigger.payload["browse_count"] == 3
    assert trigger.cause_event_ids == ("b0", "b1", "b2")
    assert trigger.trigger_id == trigger_id("abandoned_browse", ["b2", "b0", "b1"])
    assert (trigger.event_time, trigger.fired_at) == (T0 + 5 * 60_000, T0 + 5 * 60_000 + GAP)


def test_fires_as_soon_as_the_stream_closes_the_session():
    p = pipeline()
    p.feed(*browses("sku-1", [0, 2, 4]))
    p.advance(4 + 30 + 60 + 1)  # end + gap + allowed lateness passed: the session closes
    assert len(p.fired()) == 1


def test_two_browses_are_not_enough():
    p = pipeline()
    p.feed(*browses("sku-1", [0, 2]), *browses("sku-2", [3, 4], prefix="c"))
    p.close_all()
    assert p.fired() == []


def test_a_paid_purchase_in_the_session_silences_it():
    p = pipeline()
    p.feed(*browses("sku-1", [0, 2, 4]), purchase("p1", 6, 100, member_id="42"))
    p.close_all()
    assert p.fired() == []


def test_an_unpaid_purchase_does_not():
    p = pipeline()
    p.feed(*browses("sku-1", [0, 2, 4]), purchase("p1", 6, 100, member_id="42", status="created"))
    p.close_all()
    assert len(p.fired()) == 1


def test_a_paid_purchase_in_another_session_does_not():
    p = pipeline()
    p.feed(purchase("p1", 0, 100, member_id="42"), *browses("sku-1", [60, 62, 64]))
    p.close_all()
    assert len(p.fired()) == 1


def test_browses_split_over_two_sessions_do_not_add_up():
    p = pipeline()
    p.feed(*browses("sku-1", [0, 2, 100]))
    p.close_all()
    assert p.fired() == []


def test_the_most_browsed_sku_is_chosen():
    p = pipeline()
    p.feed(*browses("sku-1", [0, 1, 2]), *browses("sku-2", [3, 4, 5, 6], prefix="c"))
    p.close_all()
    assert [(t.payload["sku"], t.payload["browse_count"]) for t in p.fired()] == [("sku-2", 4)]


def test_min_browses_is_configurable():
    p = Pipeline(config({**ABANDONED, "params": {"min_browses": 2}}, **NO_QUIET))
    p.feed(*browses("sku-1", [0, 2]))
    p.close_all()
    assert len(p.fired()) == 1


def test_anonymous_browsing_merged_into_a_member_counts_for_the_member():
    p = pipeline()
    p.feed(browse("b0", 0, device_id="d-1", sku="sku-1"), browse("b1", 1, device_id="d-1", sku="sku-1"),
           browse("b2", 2, device_id="d-1", member_id="42", sku="sku-1"))
    p.close_all()
    (trigger,) = p.fired()
    assert trigger.person_id == "m:42" and trigger.payload["browse_count"] == 3


def test_the_session_log_is_forgotten_once_the_session_closed():
    p = pipeline()
    p.feed(*browses("sku-1", [0, 2, 4]))
    p.close_all()
    assert person_state(p.engine, "m:42")["log"] is None
