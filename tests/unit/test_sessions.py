"""Sessions: Kafka Streams session-window semantics, max length, aggregates, closing, re-homing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from journey_events import MINUTE, at, browse, checkin, event, purchase

from pipeline.sessions import Session, SessionPolicy, SessionTracker, stable_id

P = "d:dev-1"


def feed(tracker: SessionTracker, *events: dict, person: str = P) -> None:
    for e in events:
        tracker.add(person, e, e["occurred_at"])


def spans(tracker: SessionTracker, person: str = P) -> list[tuple[float, float]]:
    return [((s.start - at(0)) / MINUTE, (s.end - at(0)) / MINUTE) for s in tracker.open_sessions(person)]


# --- cutting and extending ---------------------------------------------------------------------------

def test_first_event_starts_a_session_with_a_stable_id_from_person_and_event():
    tracker = SessionTracker()
    feed(tracker, browse("a", 0))
    (session,) = tracker.open_sessions(P)
    assert session.session_id == stable_id(P, "a")
    assert (session.start, session.end, session.event_ids) == (at(0), at(0), ["a"])


def test_event_within_the_gap_extends_the_session():
    tracker = SessionTracker()
    feed(tracker, browse("a", 0), browse("b", 29))
    assert spans(tracker) == [(0, 29)]


def test_event_exactly_one_gap_after_the_end_still_extends():
    tracker = SessionTracker()
    feed(tracker, browse("a", 0), browse("b", 30))
    assert spans(tracker) == [(0, 30)]


def test_event_more_than_the_gap_after_the_end_starts_a_new_session():
    tracker = SessionTracker()
    feed(tracker, browse("a", 0), browse("b", 30.001))
    assert spans(tracker) == [(0, 0), (30.001, 30.001)]


def test_late_event_bridging_two_sessions_merges_them():
    """The worked example of the module docstring."""
    tracker = SessionTracker()
    feed(tracker, browse("a", 0), browse("b", 50))
    first, second = tracker.open_sessions(P)
    feed(tracker, browse("c", 25))
    (merged,) = tracker.open_sessions(P)
    assert merged.session_id == first.session_id  # the earlier session's id survives
    assert sorted(merged.event_ids) == ["a", "b", "c"] and spans(tracker) == [(0, 50)]
    assert tracker.drain()[2] == [(second.session_id, first.session_id)]


def test_late_event_before_the_start_within_the_gap_moves_the_start():
    tracker = SessionTracker()
    feed(tracker, browse("a", 40), browse("b", 15))
    assert spans(tracker) == [(15, 40)]


def test_late_event_far_before_a_session_gets_its_own_session_in_start_order():
    tracker = SessionTracker()
    feed(tracker, browse("a", 100), browse("b", 0))
    assert spans(tracker) == [(0, 0), (100, 100)]


def test_event_inside_a_session_changes_only_its_counts():
    tracker = SessionTracker()
    feed(tracker, browse("a", 0), browse("b", 20), browse("c", 10))
    assert spans(tracker) == [(0, 20)]


def test_max_length_cuts_long_continuous_activity():
    tracker = SessionTracker(SessionPolicy(gap_ms=30 * MINUTE, max_length_ms=60 * MINUTE))
    feed(tracker, *(browse(f"e{m}", m) for m in range(0, 130, 10)))
    assert spans(tracker) == [(0, 60), (70, 120)]


def test_sessions_cut_by_max_length_are_not_merged_back_by_an_event_between_them():
    tracker = SessionTracker(SessionPolicy(gap_ms=30 * MINUTE, max_length_ms=60 * MINUTE))
    feed(tracker, *(browse(f"e{m}", m) for m in range(0, 130, 10)))
    feed(tracker, browse("late", 65))
    assert spans(tracker) == [(0, 60), (65, 120)]  # the nearer session that can take it
    assert tracker.drain()[2] == []


def test_sessions_are_per_person():
    tracker = SessionTracker()
    feed(tracker, browse("a", 0), person="d:x")
    feed(tracker, browse("b", 1), person="d:y")
    assert len(tracker.open_sessions()) == 2


# --- aggregates ----------------------------------------------------------------------------------------

def test_session_counts_event_types_channels_stores_and_paid_revenue():
    tracker = SessionTracker()
    feed(tracker,
         browse("a", 0, channel="web"),
         checkin("b", 5, store="S1"),
         purchase("c", 10, 1999, store_id="S1"),
         purchase("d", 11, 5000, status="created", channel="app"),
         purchase("e", 12, 700, status="refunded", store_id="S2"),
         event("f", 13, "share"),
         event("g", 14, "complaint"))
    (s,) = tracker.open_sessions(P)
    assert s.counts == {"browse": 1, "wifi_checkin": 1, "purchase": 3, "share": 1, "complaint": 1}
    assert s.stores == {"S1", "S2"} and s.revenue_cents == 1999
    assert s.has_share and s.has_complaint and s.event_count == 7
    record = s.to_record()
    assert record["online_channels"] == ["app", "web"] and record["offline_channels"] == ["call_center", "pos",
                                                                                            "wifi"]


def test_online_event_followed_by_an_offline_one_is_online_to_offline():
    tracker = SessionTracker()
    feed(tracker, browse("a", 0), checkin("b", 10))
    assert tracker.open_sessions(P)[0].online_to_offline


def test_offline_then_online_is_not_online_to_offline_even_when_they_arrive_reversed():
    tracker = SessionTracker()
    feed(tracker, browse("b", 10), checkin("a", 0))
    assert not tracker.open_sessions(P)[0].online_to_offline


def test_merging_sessions_combines_their_aggregates():
    tracker = SessionTracker()
    feed(tracker, browse("a", 0), purchase("b", 50, 100, store_id="S1"), purchase("c", 25, 10))
    (s,) = tracker.open_sessions(P)
    assert s.revenue_cents == 110 and s.counts == {"browse": 1, "purchase": 2} and s.online_to_offline


def test_to_dict_is_the_dry_run_shape_with_iso_times():
    tracker = SessionTracker()
    feed(tracker, browse("a", 0), purchase("b", 1, 250, store_id="S1"))
    out = tracker.open_sessions(P)[0].to_dict()
    assert list(out) == ["session_id", "person_id", "start", "end", "event_ids", "counts", "stores",
                         "revenue_cents", "online_to_offline"]
    assert out["start"] == "2026-11-22T02:00:00.000Z" and out["end"] == "2026-11-22T02:01:00.000Z"
    assert json.loads(json.dumps(out)) == out


def test_record_round_trips_through_json():
    tracker = SessionTracker()
    feed(tracker, browse("a", 0), checkin("b", 3), purchase("c", 4, 10, store_id="S1"))
    session = tracker.open_sessions(P)[0]
    again = Session.from_record(json.loads(json.dumps(session.to_record())))
    assert again.to_record() == session.to_record()


# --- closing ----------------------------------------------------------------------------------------------

def test_session_closes_only_once_the_cutoff_passes_end_plus_gap():
    tracker = SessionTracker()
    feed(tracker, browse("a", 0), browse("b", 10))
    tracker.close_before(at(40))  # end + gap == 40: an event at 40 could still extend it
    assert tracker.drain()[1] == []
    tracker.close_before(at(40) + 1)
    updated, closed, _ = tracker.drain()
    assert [s.event_ids for s in closed] == [["a", "b"]] and updated == []
    assert tracker.open_sessions() == []


def test_a_session_that_grew_after_its_first_deadline_is_not_closed_early():
    tracker = SessionTracker()
    feed(tracker, browse("a", 0), browse("b", 25), browse("c", 50))
    tracker.close_before(at(60))
    assert tracker.drain()[1] == []
    tracker.close_before(at(81))
    assert len(tracker.drain()[1]) == 1


def test_close_all_closes_everything():
    tracker = SessionTracker()
    feed(tracker, browse("a", 0), browse("b", 100))
    tracker.close_all()
    assert len(tracker.drain()[1]) == 2 and tracker.open_sessions() == []


# --- identity merges: re-homing ------------------------------------------------------------------------------

def test_adopted_sessions_that_touch_merge_and_keep_the_earlier_id():
    tracker = SessionTracker()
    feed(tracker, browse("a", 0), person="d:ipad")
    feed(tracker, browse("b", 20), person="m:42")
    anon = tracker.open_sessions("d:ipad")[0]
    tracker.adopt("m:42", tracker.take_person("d:ipad"))
    (merged,) = tracker.open_sessions("m:42")
    assert merged.session_id == anon.session_id and merged.person_id == "m:42"
    assert sorted(merged.event_ids) == ["a", "b"]
    updated, _, absorbed = tracker.drain()
    assert [s.session_id for s in updated] == [anon.session_id]
    assert absorbed == [(stable_id("m:42", "b"), anon.session_id)]


def test_adopted_sessions_that_do_not_touch_stay_apart_under_the_new_person():
    tracker = SessionTracker()
    feed(tracker, browse("a", 0), person="d:ipad")
    feed(tracker, browse("b", 200), person="m:42")
    tracker.adopt("m:42", tracker.take_person("d:ipad"))
    assert [s.person_id for s in tracker.open_sessions("m:42")] == ["m:42", "m:42"]
    assert tracker.open_sessions("d:ipad") == []


def test_adopted_session_bridging_two_sessions_merges_all_three():
    tracker = SessionTracker()
    feed(tracker, browse("a", 0), browse("c", 60), person="m:42")
    feed(tracker, browse("b", 30), person="d:ipad")
    tracker.adopt("m:42", tracker.take_person("d:ipad"))
    assert [sorted(s.event_ids) for s in tracker.open_sessions("m:42")] == [["a", "b", "c"]]


# --- policy -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"gap_ms": 0}, "gap_ms must be a positive integer of milliseconds, got 0"),
    ({"gap_ms": 1.5}, "got 1.5"),
    ({"gap_ms": 60_000, "max_length_ms": 1000}, "max_length_ms must be an integer >= gap_ms (60000), got 1000"),
])
def test_bad_session_policy_names_the_bad_value(kwargs, message):
    with pytest.raises(ValueError) as error:
        SessionPolicy(**kwargs)
    assert message in str(error.value)


# --- properties ----------------------------------------------------------------------------------------------

stream = st.lists(
    st.tuples(st.sampled_from(["d:x", "d:y"]), st.integers(0, 600), st.sampled_from(["browse", "wifi_checkin",
                                                                                     "purchase"])),
    min_size=1, max_size=40,
)


def sessions_of(tracker: SessionTracker) -> set:
    return {(s.person_id, s.start, s.end, frozenset(s.event_ids), tuple(sorted(s.counts.items())),
             s.online_to_offline) for s in tracker.open_sessions()}


def events_from(items):
    out = []
    for n, (person, minute, kind) in enumerate(items):
        e = checkin(f"e{n}", minute) if kind == "wifi_checkin" else event(f"e{n}", minute, kind)
        out.append((person, e))
    return out


@settings(max_examples=300, deadline=None)
@given(stream, st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_sessions_when_max_length_never_cuts(items, rnd):
    pairs = events_from(items)
    policy = SessionPolicy(gap_ms=30 * MINUTE, max_length_ms=10_000 * MINUTE)
    in_order, shuffled = SessionTracker(policy), SessionTracker(policy)
    for person, e in sorted(pairs, key=lambda p: p[1]["occurred_at"]):
        in_order.add(person, e, e["occurred_at"])
    rnd.shuffle(pairs)
    for person, e in pairs:
        shuffled.add(person, e, e["occurred_at"])
    assert sessions_of(in_order) == sessions_of(shuffled)


@settings(max_examples=300, deadline=None)
@given(stream, st.integers(10, 200))
def test_every_event_lands_in_exactly_one_session_and_no_session_exceeds_max_length(items, max_minutes):
    policy = SessionPolicy(gap_ms=10 * MINUTE, max_length_ms=max(10, max_minutes) * MINUTE)
    tracker = SessionTracker(policy)
    for person, e in events_from(items):
        tracker.add(person, e, e["occurred_at"])
    ids = [i for s in tracker.open_sessions() for i in s.event_ids]
    assert sorted(ids) == sorted(f"e{n}" for n in range(len(items)))
    for s in tracker.open_sessions():
        assert s.end - s.start <= policy.max_length_ms
    for person in ("d:x", "d:y"):
        mine = tracker.open_sessions(person)
        for earlier, later in zip(mine, mine[1:]):
            assert earlier.start < later.start and earlier.end <= later.end  # none inside another
            if later.start - earlier.end <= policy.gap_ms:  # touching only when merging would be too long
                assert later.end - earlier.start > policy.max_length_ms
