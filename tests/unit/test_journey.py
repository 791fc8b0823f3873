"""JourneyProcessor: identity + sessions + visits per batch, lateness, closing, state, hand-off."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from journey_events import MINUTE, at, browse, checkin, event, purchase

from pipeline.journey import JourneyPolicy, JourneyProcessor
from pipeline.sessions import SessionPolicy

HOUR = 60 * MINUTE


def closed_sessions(*batches) -> dict[str, dict]:
    return {s.session_id: s.to_record() for b in batches for s in b.sessions_closed}


def run_to_end(processor: JourneyProcessor, events: list[dict], batch_size: int = 1000):
    batches = [processor.process(events[i:i + batch_size]) for i in range(0, len(events), batch_size)]
    return batches + [processor.close_all()]


# --- the O2O loop -----------------------------------------------------------------------------------------

def test_anonymous_browsing_moves_to_the_member_who_logs_in_at_the_store():
    processor = JourneyProcessor()
    processor.process([browse("a", 0, device_id="ipad"), browse("b", 5, device_id="ipad")])
    batch = processor.process([checkin("c", 20, "portal_login", member_id="42", mac="aa"),
                               purchase("d", 25, 4500, member_id="42", store_id="S1")])
    assert [(m.from_person, m.to_person) for m in batch.merges] == []  # the phone's MAC is new: no merge yet
    batch = processor.process([browse("e", 26, member_id="42", device_id="ipad")])
    (merge,) = batch.merges
    assert (merge.from_person, merge.to_person, merge.at_ms) == ("d:ipad", "m:42", at(26))
    (session,) = batch.sessions_updated
    assert session.person_id == "m:42" and sorted(session.event_ids) == ["a", "b", "c", "d", "e"]
    assert session.online_to_offline and session.revenue_cents == 4500
    assert [a for a, _ in batch.sessions_absorbed]  # the member's own session folded into the older one


def test_identity_merge_moves_open_visits_too():
    processor = JourneyProcessor()
    processor.process([checkin("a", 0, mac="aa"), checkin("b", 3, mac="aa")])
    batch = processor.process([checkin("c", 6, "portal_login", mac="aa", member_id="42")])
    (visit,) = batch.visits_updated
    assert visit.person_id == "m:42" and visit.event_ids == ["a", "b", "c"]
    assert processor.visits.open_visits("w:aa") == []


def test_two_members_sharing_a_tablet_keep_separate_sessions():
    processor = JourneyProcessor()
    batch = processor.process([browse("a", 0, member_id="A", device_id="tablet"),
                               browse("b", 1, member_id="B", device_id="tablet")])
    assert {s.person_id for s in batch.sessions_updated} == {"m:A", "m:B"}
    assert [c.identifier for c in batch.conflicts] == ["d:tablet"] and processor.stats["conflicts"] == 1


# --- time: lateness and closing ------------------------------------------------------------------------------

def test_late_event_beyond_the_allowed_lateness_is_returned_not_lost():
    processor = JourneyProcessor()
    processor.process([browse("a", 0), browse("b", 120)])
    batch = processor.process([browse("old", 59.99)])
    assert [late.to_dict() for late in batch.late] == [
        {"event_id": "old", "person_id": "d:dev-1", "event_type": "browse", "occurred_at": at(59.99)}]
    assert batch.sessions_updated == [] and processor.stats["late"] == 1


def test_event_exactly_at_the_cutoff_is_accepted():
    processor = JourneyProcessor()
    processor.process([browse("a", 120)])
    batch = processor.process([browse("b", 60)])
    assert batch.late == [] and [s.event_ids for s in batch.sessions_updated] == [["b"]]


def test_late_event_still_links_identities():
    processor = JourneyProcessor()
    processor.process([browse("a", 0, device_id="ipad"), browse("b", 300, device_id="other")])
    batch = processor.process([browse("old", 10, member_id="42", device_id="ipad")])
    assert len(batch.late) == 1 and [(m.from_person, m.to_person) for m in batch.merges] == [("d:ipad", "m:42")]


def test_late_event_within_the_lateness_bridging_two_sessions_merges_them():
    processor = JourneyProcessor()
    first = processor.process([browse("a", 0), browse("b", 50)])
    early = min(first.sessions_updated, key=lambda s: s.start)
    batch = processor.process([browse("c", 25)])
    (merged,) = batch.sessions_updated
    assert merged.session_id == early.session_id and len(batch.sessions_absorbed) == 1


def test_session_closes_when_the_watermark_passes_end_plus_gap_plus_lateness_and_emits_its_final_version():
    processor = JourneyProcessor()
    processor.process([browse("a", 0), browse("b", 10)])
    assert processor.process([browse("x", 100, device_id="other")]).sessions_closed == []  # 10 + 30 + 60
    batch = processor.process([browse("y", 100.001, device_id="other")])
    (final,) = batch.sessions_closed
    assert final.event_ids == ["a", "b"] and final.session_id not in {s.session_id for s in batch.sessions_updated}


def test_advance_closes_idle_sessions_and_visits_without_new_events():
    processor = JourneyProcessor()
    processor.process([checkin("a", 0), checkin("b", 6)])
    batch = processor.advance(at(6 + 30 + 60) + 1)
    assert len(batch.sessions_closed) == 1 and len(batch.visits_closed) == 1
    assert processor.watermark_ms == at(96) + 1


def test_advance_never_moves_the_watermark_back():
    processor = JourneyProcessor()
    processor.process([browse("a", 100)])
    processor.advance(at(0))
    assert processor.watermark_ms == at(100)


def test_close_all_emits_every_open_session_and_visit():
    processor = JourneyProcessor()
    processor.process([browse("a", 0), checkin("b", 1), browse("c", 50, device_id="x")])
    batch = processor.close_all()
    assert len(batch.sessions_closed) == 3 and len(batch.visits_closed) == 1
    assert processor.sessions.open_sessions() == [] and processor.visits.open_visits() == []


def test_wifi_checkin_without_a_store_counts_in_the_session_but_makes_no_visit():
    processor = JourneyProcessor()
    batch = processor.process([checkin("a", 0, store=None)])
    assert len(batch.sessions_updated) == 1 and batch.visits_updated == []


# --- output shape ------------------------------------------------------------------------------------------------

def test_batch_to_dict_is_json_with_the_dry_run_shapes():
    processor = JourneyProcessor()
    processor.process([browse("a", 0, device_id="ipad"), checkin("b", 2)])
    batch = processor.process([browse("c", 3, member_id="42", device_id="ipad"),
                               purchase("d", 4, 100, member_id="42", store_id="S1")])
    out = json.loads(json.dumps(batch.to_dict(processor.policy.visits)))
    assert out["merges"][0]["to_person"] == "m:42"
    assert set(out["sessions_updated"][0]) == {"session_id", "person_id", "start", "end", "event_ids", "counts",
                                               "stores", "revenue_cents", "online_to_offline"}
    assert processor.person_dict("m:42")["device_ids"] == ["ipad"]


@pytest.mark.parametrize("lateness", [-1, 1.0, None])
def test_bad_lateness_names_the_bad_value(lateness):
    with pytest.raises(ValueError, match=f"allowed_lateness_ms must be an integer >= 0 milliseconds, got {lateness}"):
        JourneyPolicy(allowed_lateness_ms=lateness)


# --- state: snapshot, changelog, partition hand-off -------------------------------------------------------------

def mixed_stream() -> list[dict]:
    events = []
    for n in range(60):
        minute = n * 7 % 400 + n // 3
        if n % 3 == 0:
            events.append(checkin(f"w{n}", minute, mac=f"mac{n % 4}", store=f"S{n % 2}"))
        elif n % 5 == 0:
            events.append(purchase(f"p{n}", minute, 100 * n, member_id=f"M{n % 4}", store_id="S1"))
        else:
            events.append(browse(f"b{n}", minute, device_id=f"dev{n % 4}",
                                 member_id=f"M{n % 4}" if n % 4 == 1 else None))
    events.append(checkin("link", 200, "portal_login", mac="mac1", member_id="M1"))
    return events


def test_restoring_a_json_snapshot_mid_stream_gives_the_uninterrupted_result():
    events = mixed_stream()
    whole = run_to_end(JourneyProcessor(), events, 10)
    first = JourneyProcessor()
    head = [first.process(events[i:i + 10]) for i in range(0, 30, 10)]
    restored = JourneyProcessor.restore(json.loads(json.dumps(first.snapshot())))
    tail = run_to_end(restored, events[30:], 10)
    assert closed_sessions(*head, *tail) == closed_sessions(*whole)
    assert [m.to_dict() for b in head + tail for m in b.merges] == [m.to_dict() for b in whole for m in b.merges]


def test_replaying_the_changelog_restores_the_same_state():
    events, log = mixed_stream(), []
    processor = JourneyProcessor(track_changes=True)
    for i in range(0, len(events), 7):
        processor.process(events[i:i + 7])
        if i % 14 == 0:
            log += processor.drain_changes()
    log += processor.drain_changes()
    restored = JourneyProcessor.restore(json.loads(json.dumps(log)))
    assert json.loads(json.dumps(restored.snapshot())) == json.loads(json.dumps(processor.snapshot()))


def test_a_person_handed_to_another_partition_continues_there():
    """Stage-2 workers: `from` lives on one partition, `to` on another; the merge record moves state."""
    left, right = JourneyProcessor(), JourneyProcessor()
    left.process_resolved([("d:ipad", browse("a", 0, device_id="ipad"))])
    right.process_resolved([("m:42", browse("b", 10, member_id="42"))])
    exported = left.export_person("d:ipad")
    wire = json.loads(json.dumps({"sessions": [s.to_record() for s in exported["sessions"]],
                                  "visits": [v.to_record(left.policy.visits) for v in exported["visits"]]}))
    right.import_person("m:42", wire)
    right.process_resolved([("m:42", browse("c", 20, member_id="42"))])
    (session,) = right.close_all().sessions_closed
    assert sorted(session.event_ids) == ["a", "b", "c"] and session.person_id == "m:42"
    assert left.close_all().sessions_closed == []


def test_changelog_reuses_the_records_a_sink_already_made():
    processor = JourneyProcessor(track_changes=True)
    batch = processor.process([browse("a", 0), checkin("b", 1)])
    records = batch.records()
    changes = dict(processor.drain_changes())
    assert changes["s:" + batch.sessions_updated[0].session_id] is records["sessions_updated"][0]
    assert changes["v:" + batch.visits_updated[0].visit_id] is records["visits_updated"][0]


def test_changelog_folds_batches_to_the_latest_version_of_each_key():
    processor = JourneyProcessor(track_changes=True)
    first = processor.process([browse("a", 0)])
    processor.process([browse("b", 5)])
    (session,) = first.sessions_updated
    changes = dict(processor.drain_changes())
    assert changes["s:" + session.session_id]["event_ids"] == ["a", "b"]
    processor.process([browse("x", 500, device_id="other")])  # closes the first session
    assert dict(processor.drain_changes())["s:" + session.session_id] is None


def test_drain_changes_without_tracking_says_what_to_do():
    with pytest.raises(RuntimeError, match="track_changes=True"):
        JourneyProcessor().drain_changes()


# --- properties ------------------------------------------------------------------------------------------------

person_events = st.lists(
    st.tuples(st.sampled_from(["dev-a", "dev-b", "mac-c"]), st.integers(0, 24 * 60),
              st.sampled_from(["browse", "wifi_checkin", "purchase"]), st.integers(0, 60)),
    min_size=1, max_size=60,
)


def build(items) -> list[dict]:
    events = []
    for n, (who, minute, kind, _) in enumerate(items):
        if kind == "wifi_checkin":
            events.append(checkin(f"e{n}", minute, mac=who))
        else:
            events.append(event(f"e{n}", minute, kind, device_id=who))
    return events


def session_sets(batches) -> set:
    return {(s.person_id, s.start, s.end, frozenset(s.event_ids), s.revenue_cents, s.online_to_offline)
            for b in batches for s in b.sessions_closed}


def visit_sets(batches) -> set:
    return {(v.person_id, v.store_id, v.start, v.end, frozenset(v.event_ids))
            for b in batches for v in b.visits_closed}


@settings(max_examples=200, deadline=None)
@given(person_events, st.integers(1, 20))
def test_shuffled_within_the_allowed_lateness_gives_the_sessions_and_visits_of_the_sorted_stream(items, batch):
    events = build(items)
    ordered = sorted(events, key=lambda e: e["occurred_at"])
    # Arrival = event time + a delay up to the allowed lateness: never late, arbitrarily reordered.
    delay = {e["event_id"]: d * MINUTE for e, (_, _, _, d) in zip(events, items)}
    arrived = sorted(events, key=lambda e: (e["occurred_at"] + delay[e["event_id"]], e["event_id"]))
    policy = JourneyPolicy(allowed_lateness_ms=HOUR, sessions=SessionPolicy(max_length_ms=48 * HOUR))
    a = run_to_end(JourneyProcessor(policy), ordered, batch)
    b = run_to_end(JourneyProcessor(policy), arrived, batch)
    assert sum(len(x.late) for x in b) == 0
    assert session_sets(a) == session_sets(b) and visit_sets(a) == visit_sets(b)


@settings(max_examples=200, deadline=None)
@given(person_events, st.lists(st.integers(1, 15), min_size=1, max_size=10))
def test_batch_boundaries_do_not_change_the_result(items, sizes):
    events = build(items)
    whole = run_to_end(JourneyProcessor(), events, len(events))
    processor, batches, i = JourneyProcessor(), [], 0
    for n in range(len(events)):
        size = sizes[n % len(sizes)]
        if i >= len(events):
            break
        batches.append(processor.process(events[i:i + size]))
        i += size
    batches.append(processor.close_all())
    assert closed_sessions(*batches) == closed_sessions(*whole)
    assert sorted(e.event["event_id"] for b in batches for e in b.late) == sorted(
        e.event["event_id"] for b in whole for e in b.late)
