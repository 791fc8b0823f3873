"""The journey's coalescing of open session and visit updates (agents.journey_records.OpenUpdates)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agents.journey_records import OpenUpdates


def session(session_id: str, state: str, version: int) -> dict:
    return {"session_id": session_id, "state": state, "version": version}


def visit(visit_id: str, state: str, version: int) -> dict:
    return {"visit_id": visit_id, "state": state, "version": version}


def test_open_updates_wait_for_the_interval_and_only_the_latest_version_goes():
    updates = OpenUpdates(interval_s=1.0)
    assert updates.pass_through([session("a", "open", 1)], [], now_s=10.0) == ([session("a", "open", 1)], [])
    assert updates.pass_through([session("a", "open", 2)], [visit("v", "open", 1)], now_s=10.5) == ([], [])
    assert updates.pass_through([session("a", "open", 3)], [], now_s=10.9) == ([], [])
    assert updates.pass_through([], [], now_s=11.0) == ([session("a", "open", 3)], [visit("v", "open", 1)])
    assert updates.pass_through([], [], now_s=12.5) == ([], [])


def test_a_closure_goes_at_once_and_drops_the_held_open_version():
    updates = OpenUpdates(interval_s=1.0)
    updates.pass_through([session("a", "open", 1)], [], now_s=10.0)
    updates.pass_through([session("a", "open", 2), session("b", "open", 1)], [visit("v", "open", 1)], now_s=10.2)
    published = updates.pass_through([session("a", "closed", 3)], [visit("v", "absorbed", 2)], now_s=10.3)
    assert published == ([session("a", "closed", 3)], [visit("v", "absorbed", 2)])
    assert updates.release(now_s=10.4) == ([session("b", "open", 1)], [])


def test_interval_zero_publishes_every_batch():
    updates = OpenUpdates(interval_s=0)
    for version in range(3):
        assert updates.pass_through([session("a", "open", version)], [], now_s=5.0) == (
            [session("a", "open", version)], [])


def test_hold_all_republishes_every_open_session_and_visit_at_the_next_release():
    updates = OpenUpdates(interval_s=1.0)
    updates.hold_all([{"session_id": "a", "person_id": "p"}], [{"visit_id": "v", "person_id": "p"}], emitted_at=7)
    sessions, visits = updates.pass_through([], [], now_s=0.0)
    assert sessions == [{"session_id": "a", "person_id": "p", "state": "open", "absorbed_into": None, "emitted_at": 7}]
    assert visits == [{"visit_id": "v", "person_id": "p", "state": "open", "absorbed_into": None, "emitted_at": 7}]


batches = st.lists(
    st.tuples(st.lists(st.tuples(st.sampled_from("abcd"), st.sampled_from(["open", "open", "closed", "absorbed"]))),
              st.floats(min_value=0, max_value=0.7)),
    max_size=30)


@given(batches)
def test_what_is_published_ends_at_the_latest_version_and_never_reopens(steps):
    updates = OpenUpdates(interval_s=1.0)
    given_last: dict[str, dict] = {}
    published: list[dict] = []
    now, version = 0.0, 0
    for changes, pause in steps:
        now += pause
        records = []
        for session_id, state in changes:
            if given_last.get(session_id, {}).get("state", "open") != "open":
                continue  # a closed or absorbed session never comes back
            version += 1
            records.append(session(session_id, state, version))
            given_last[session_id] = records[-1]
        sessions, visits = updates.pass_through(records, [], now)
        assert visits == []
        published += sessions
    published += updates.release(now + 1)[0]
    published_last = {}
    for record in published:
        earlier = published_last.get(record["session_id"])
        assert earlier is None or earlier["version"] < record["version"], "versions go forward per id"
        assert earlier is None or earlier["state"] == "open" or record["state"] != "open", "no open after a closure"
        published_last[record["session_id"]] = record
    assert published_last == given_last
