"""Store visits: timeout, disassociate, visitor / passerby thresholds, late check-ins, re-homing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from journey_events import MINUTE, at, checkin

from pipeline.visits import EVENT_ID, VisitPolicy, VisitTracker, split_into_visits

P = "w:mac-1"


def feed(tracker: VisitTracker, *events: dict, person: str = P) -> None:
    for e in events:
        tracker.add(person, e["store_id"], e, e["occurred_at"])


def spans(tracker: VisitTracker, person: str = P) -> list[tuple[float, float]]:
    return sorted(((v.start - at(0)) / MINUTE, (v.end - at(0)) / MINUTE) for v in tracker.open_visits(person))


def only_visit(tracker: VisitTracker):
    (visit,) = tracker.open_visits(P)
    return visit


def test_worked_example_of_the_module_docstring():
    tracker = VisitTracker()
    feed(tracker, checkin("1", 0, "probe", -80), checkin("2", 4, "associate", -60),
         checkin("3", 9, "disassociate", None), checkin("4", 12, "probe", -85))
    first, second = sorted(tracker.open_visits(P), key=lambda v: v.start)
    assert (first.dwell_ms, first.max_rssi, first.ended, first.visit_class(tracker.policy)) == (
        9 * MINUTE, -60, True, "visitor")
    assert (second.start, second.visit_class(tracker.policy)) == (at(12), "passerby")


def test_checkins_within_the_timeout_extend_the_visit():
    tracker = VisitTracker()
    feed(tracker, checkin("a", 0), checkin("b", 15), checkin("c", 30))
    assert spans(tracker) == [(0, 30)]


def test_silence_longer_than_the_timeout_starts_a_new_visit():
    tracker = VisitTracker()
    feed(tracker, checkin("a", 0), checkin("b", 15.001))
    assert spans(tracker) == [(0, 0), (15.001, 15.001)]


def test_disassociate_ends_the_visit_and_the_next_checkin_starts_another():
    tracker = VisitTracker()
    feed(tracker, checkin("a", 0), checkin("b", 2, "disassociate"), checkin("c", 3))
    assert spans(tracker) == [(0, 2), (3, 3)]


def test_checkin_at_the_same_time_as_the_disassociate_stays_in_the_visit():
    tracker = VisitTracker()
    feed(tracker, checkin("a", 0), checkin("b", 2, "disassociate"), checkin("c", 2))
    assert spans(tracker) == [(0, 2)]
    assert only_visit(tracker).ended


def test_late_disassociate_splits_a_visit():
    tracker = VisitTracker()
    feed(tracker, checkin("a", 0), checkin("b", 4), checkin("c", 8))
    original = only_visit(tracker).visit_id
    feed(tracker, checkin("d", 5, "disassociate"))
    assert spans(tracker) == [(0, 5), (8, 8)]
    first = min(tracker.open_visits(P), key=lambda v: v.start)
    assert first.visit_id == original and first.ended


def test_late_checkin_bridging_two_visits_merges_them_and_reports_the_absorbed_one():
    tracker = VisitTracker()
    feed(tracker, checkin("a", 0), checkin("b", 25))
    ids = sorted((v.start, v.visit_id) for v in tracker.open_visits(P))
    tracker.drain()
    feed(tracker, checkin("c", 12))
    assert spans(tracker) == [(0, 25)]
    assert only_visit(tracker).visit_id == ids[0][1]
    assert tracker.drain()[2] == [(ids[1][1], ids[0][1])]


def test_late_checkin_inside_a_visit_updates_the_strongest_signal():
    tracker = VisitTracker()
    feed(tracker, checkin("a", 0, rssi=-80), checkin("b", 10, rssi=-80), checkin("c", 5, rssi=-50))
    visit = only_visit(tracker)
    assert visit.max_rssi == -50 and visit.event_ids == ["a", "c", "b"]


def test_visits_are_per_store():
    tracker = VisitTracker()
    feed(tracker, checkin("a", 0, store="S1"), checkin("b", 1, store="S2"), checkin("c", 2, store="S1"))
    assert sorted((v.store_id, len(v.checkins)) for v in tracker.open_visits(P)) == [("S1", 2), ("S2", 1)]


# --- visitor or passerby ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dwell_min, rssi, kind, expected", [
    (5, -70, "probe", "visitor"),       # both thresholds are inclusive
    (4.99, -40, "probe", "passerby"),   # too short
    (10, -71, "probe", "passerby"),     # too weak: walking past the window
    (10, -90, "associate", "visitor"),  # connected to the store's network: inside
    (10, None, "portal_login", "visitor"),
    (10, None, "probe", "passerby"),    # no signal reading, never connected
])
def test_visitor_needs_dwell_and_signal(dwell_min, rssi, kind, expected):
    tracker = VisitTracker()
    feed(tracker, checkin("a", 0, kind, rssi), checkin("b", dwell_min, "probe", rssi))
    assert only_visit(tracker).visit_class(tracker.policy) == expected


def test_thresholds_are_configurable():
    policy = VisitPolicy(visitor_min_dwell_ms=MINUTE, visitor_min_rssi_dbm=-90)
    tracker = VisitTracker(policy)
    feed(tracker, checkin("a", 0, rssi=-85), checkin("b", 1, rssi=-85))
    assert only_visit(tracker).visit_class(policy) == "visitor"


def test_to_dict_is_the_dry_run_shape():
    tracker = VisitTracker()
    feed(tracker, checkin("a", 0), checkin("b", 6.5))
    out = only_visit(tracker).to_dict(tracker.policy)
    assert out == {"person_id": P, "store_id": "S1", "start": "2026-11-22T02:00:00.000Z",
                   "end": "2026-11-22T02:06:30.000Z", "dwell_s": 390, "class": "visitor"}


def test_record_round_trips_through_json():
    from pipeline.visits import Visit
    tracker = VisitTracker()
    feed(tracker, checkin("a", 0, "associate"), checkin("b", 6, "disassociate", None))
    visit = only_visit(tracker)
    again = Visit.from_record(json.loads(json.dumps(visit.to_record(tracker.policy))))
    assert again.to_record(tracker.policy) == visit.to_record(tracker.policy)


# --- closing -----------------------------------------------------------------------------------------------

def test_visit_closes_once_the_cutoff_passes_end_plus_timeout():
    tracker = VisitTracker()
    feed(tracker, checkin("a", 0), checkin("b", 5))
    tracker.close_before(at(20))
    assert tracker.drain()[1] == []
    tracker.close_before(at(20) + 1)
    assert [v.end for v in tracker.drain()[1]] == [at(5)]


def test_visit_ended_by_disassociate_closes_once_the_cutoff_passes_its_end():
    tracker = VisitTracker()
    feed(tracker, checkin("a", 0), checkin("b", 5, "disassociate"))
    tracker.close_before(at(5) + 1)
    assert len(tracker.drain()[1]) == 1


# --- re-homing -----------------------------------------------------------------------------------------------

def test_adopted_visit_at_the_same_store_merges_with_a_touching_one():
    tracker = VisitTracker()
    feed(tracker, checkin("a", 0, mac="m1"), person="w:m1")
    feed(tracker, checkin("b", 5, mac="m2"), person="m:42")
    tracker.adopt("m:42", tracker.take_person("w:m1"))
    (visit,) = tracker.open_visits("m:42")
    assert visit.event_ids == ["a", "b"] and visit.person_id == "m:42"


def test_adopted_visit_keeps_its_id_when_it_touches_nothing():
    tracker = VisitTracker()
    feed(tracker, checkin("a", 0), person="w:m1")
    visit_id = tracker.open_visits("w:m1")[0].visit_id
    tracker.adopt("m:42", tracker.take_person("w:m1"))
    assert [v.visit_id for v in tracker.open_visits("m:42")] == [visit_id]


# --- policy -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"timeout_ms": 0}, "timeout_ms must be a positive integer of milliseconds, got 0"),
    ({"visitor_min_dwell_ms": -1}, "visitor_min_dwell_ms must be an integer >= 0 milliseconds, got -1"),
    ({"visitor_min_rssi_dbm": 10}, "between -120 and 0, got 10"),
])
def test_bad_visit_policy_names_the_bad_value(kwargs, message):
    with pytest.raises(ValueError) as error:
        VisitPolicy(**kwargs)
    assert message in str(error.value)


# --- properties ----------------------------------------------------------------------------------------------

checkin_streams = st.lists(
    st.tuples(st.integers(0, 120), st.sampled_from(["probe", "probe", "associate", "disassociate"]),
              st.none() | st.integers(-95, -40), st.sampled_from(["S1", "S2"])),
    min_size=1, max_size=30,
)


def visits_of(tracker: VisitTracker) -> set:
    return {(v.store_id, v.start, v.end, v.max_rssi, v.connected, v.ended, frozenset(v.event_ids))
            for v in tracker.open_visits()}


@settings(max_examples=300, deadline=None)
@given(checkin_streams, st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_visits_of_the_sorted_stream(items, rnd):
    events = [checkin(f"e{n}", minute, kind, rssi, store=store) for n, (minute, kind, rssi, store) in enumerate(items)]
    in_order, shuffled = VisitTracker(), VisitTracker()
    feed(in_order, *sorted(events, key=lambda e: (e["occurred_at"], e["kind"] == "disassociate", e["event_id"])))
    rnd.shuffle(events)
    feed(shuffled, *events)
    assert visits_of(in_order) == visits_of(shuffled)
    for store in ("S1", "S2"):  # and both equal cutting the sorted check-ins in one go
        checkins = [c for v in in_order.open_visits() if v.store_id == store for c in v.checkins]
        pieces = split_into_visits(sorted(checkins, key=lambda c: (c[0], c[1], c[EVENT_ID])),
                                   VisitPolicy().timeout_ms)
        assert {frozenset(c[EVENT_ID] for c in p) for p in pieces} == {
            frozenset(v.event_ids) for v in in_order.open_visits() if v.store_id == store}


def test_split_into_visits_cuts_on_silence_and_after_disassociate():
    c = [(0, False, -60, False, "a"), (MINUTE, True, None, False, "b"), (MINUTE, False, -60, False, "c"),
         (2 * MINUTE, False, -60, False, "d"), (20 * MINUTE, False, -60, False, "e")]
    pieces = split_into_visits(sorted(c, key=lambda x: (x[0], x[1])), 15 * MINUTE)
    assert [[x[EVENT_ID] for x in p] for p in pieces] == [["a", "c", "b"], ["d"], ["e"]]
