"""Deduplicator: event-time window counted from first sighting, bounded memory, exact snapshots."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.dedup import Deduplicator

MIN = 60_000


def minutes(window=10, bucket=1, **kwargs) -> Deduplicator:
    return Deduplicator(window_ms=window * MIN, bucket_ms=bucket * MIN, **kwargs)


def test_first_sighting_is_new_and_second_is_a_duplicate():
    dedup = minutes()
    assert dedup.is_duplicate("a", 0) is False
    assert dedup.is_duplicate("a", 0) is True


def test_duplicate_with_a_different_occurred_at_is_still_a_duplicate():
    dedup = minutes()
    dedup.is_duplicate("a", 0)
    assert dedup.is_duplicate("a", 3 * MIN) is True


def test_the_docstring_worked_example():
    dedup = minutes()
    steps = [("a", 0, False), ("b", 5, False), ("a", 0, True), ("d", -50, False),
             ("c", 11, False), ("a", 0, False), ("d", -50, True)]
    assert [dedup.is_duplicate(e, t * MIN) for e, t, _ in steps] == [expected for _, _, expected in steps]


def test_id_is_remembered_for_the_whole_window():
    dedup = minutes()
    dedup.is_duplicate("a", 0)
    dedup.is_duplicate("x", 10 * MIN)  # watermark bucket 10: 'a' (bucket 0) is still inside
    assert dedup.is_duplicate("a", 0) is True


def test_id_is_forgotten_once_the_watermark_passes_the_window():
    dedup = minutes()
    dedup.is_duplicate("a", 0)
    dedup.is_duplicate("x", 11 * MIN)
    assert dedup.is_duplicate("a", 0) is False


def test_late_event_is_remembered_for_a_window_after_it_arrived():
    dedup = minutes()
    dedup.is_duplicate("x", 100 * MIN)
    dedup.is_duplicate("late", 20 * MIN)  # 80 minutes late
    dedup.is_duplicate("y", 109 * MIN)
    assert dedup.is_duplicate("late", 20 * MIN) is True


def test_late_event_is_not_refused_only_remembered():
    dedup = minutes()
    dedup.is_duplicate("x", 100 * MIN)
    assert dedup.is_duplicate("late", 0) is False


def test_watermark_is_the_largest_occurred_at_seen():
    dedup = minutes()
    assert dedup.watermark is None
    for t in (5, 3, 9, 7):
        dedup.is_duplicate(f"e{t}", t)
    assert dedup.watermark == 9


def test_window_not_a_multiple_of_bucket_remembers_at_least_the_window():
    dedup = Deduplicator(window_ms=100, bucket_ms=60)
    dedup.is_duplicate("a", 59)
    dedup.is_duplicate("x", 159)
    assert dedup.is_duplicate("a", 0) is True


def test_memory_is_bounded_by_max_entries():
    dedup = minutes(max_entries=100)
    for i in range(1000):
        dedup.is_duplicate(f"e{i}", 0)
    assert len(dedup) == 100


def test_oldest_ids_are_forgotten_first_when_full():
    dedup = minutes(max_entries=3)
    for event_id in "abcd":
        dedup.is_duplicate(event_id, 0)
    assert [dedup.is_duplicate(e, 0) for e in "bcd"] == [True, True, True]
    assert dedup.is_duplicate("a", 0) is False


def test_split_returns_new_and_duplicate_events_in_input_order():
    dedup = minutes()
    dedup.is_duplicate("a", 0)
    events = [{"event_id": e, "occurred_at": 0} for e in "abcb"]
    fresh, duplicates = dedup.split(events)
    assert [e["event_id"] for e in fresh] == ["b", "c"]
    assert [e["event_id"] for e in duplicates] == ["a", "b"]


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"window_ms": 0}, "0"),
        ({"max_entries": 0}, "0"),
        ({"window_ms": 10, "bucket_ms": 11}, "11"),
        ({"bucket_ms": 0}, "0"),
    ],
)
def test_constructor_refuses_bad_settings_naming_the_value(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        Deduplicator(**kwargs)


def test_default_bucket_is_a_sixtieth_of_the_window():
    assert Deduplicator(window_ms=600_000).bucket_ms == 10_000


def test_snapshot_is_json_serialisable_and_restores_exactly():
    dedup = minutes()
    for i, t in enumerate([0, 2, 1, 7, 12, 3]):
        dedup.is_duplicate(f"e{i}", t * MIN)
    snapshot = json.loads(json.dumps(dedup.snapshot()))
    restored = Deduplicator.restore(snapshot)
    assert restored.snapshot() == dedup.snapshot()
    assert len(restored) == len(dedup) and restored.watermark == dedup.watermark


def test_snapshot_of_an_empty_deduplicator_restores():
    restored = Deduplicator.restore(minutes().snapshot())
    assert len(restored) == 0 and restored.watermark is None
    assert restored.is_duplicate("a", 0) is False


def test_restore_with_a_smaller_max_entries_keeps_the_newest():
    dedup = minutes()
    for i in range(10):
        dedup.is_duplicate(f"e{i}", i * MIN)
    restored = Deduplicator.restore(dedup.snapshot(), max_entries=4)
    assert len(restored) == 4
    assert restored.is_duplicate("e9", 9 * MIN) is True


def test_restore_refuses_an_unknown_snapshot_format():
    with pytest.raises(ValueError, match="format"):
        Deduplicator.restore({"format": 99})


# --- against a reference model ------------------------------------------------------------------

class ReferenceDedup:
    """The documented rule, written the slow and obvious way (no memory bound)."""

    def __init__(self, window_ms: int, bucket_ms: int) -> None:
        self.window_buckets = -(-window_ms // bucket_ms)
        self.bucket_ms = bucket_ms
        self.first_seen_bucket: dict[str, int] = {}
        self.watermark: int | None = None

    def is_duplicate(self, event_id: str, occurred_at: int) -> bool:
        if event_id in self.first_seen_bucket:
            head = self.watermark // self.bucket_ms
            if self.first_seen_bucket[event_id] >= head - self.window_buckets:
                return True
        self.watermark = occurred_at if self.watermark is None else max(self.watermark, occurred_at)
        self.first_seen_bucket[event_id] = self.watermark // self.bucket_ms
        return False


stream = st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 60)), max_size=80)


@given(stream, st.integers(1, 20), st.integers(1, 20))
def test_answers_match_the_reference_model(events, window, bucket):
    bucket = min(bucket, window)
    dedup, reference = Deduplicator(window, bucket_ms=bucket), ReferenceDedup(window, bucket)
    for event_id, t in events:
        assert dedup.is_duplicate(event_id, t) == reference.is_duplicate(event_id, t)


@given(stream, st.integers(0, 80))
def test_snapshot_and_restore_midway_changes_no_answer(events, cut):
    straight = Deduplicator(10, bucket_ms=3)
    interrupted = Deduplicator(10, bucket_ms=3)
    answers, resumed = [], []
    for i, (event_id, t) in enumerate(events):
        if i == cut:
            interrupted = Deduplicator.restore(json.loads(json.dumps(interrupted.snapshot())))
        answers.append(straight.is_duplicate(event_id, t))
        resumed.append(interrupted.is_duplicate(event_id, t))
    assert answers == resumed


@given(st.lists(st.tuples(st.text(max_size=3), st.integers(0, 10_000)), max_size=200), st.integers(1, 20))
def test_size_never_exceeds_max_entries(events, max_entries):
    dedup = Deduplicator(1000, max_entries=max_entries)
    for event_id, t in events:
        dedup.is_duplicate(event_id, t)
        assert len(dedup) <= max_entries


@given(stream, st.integers(0, 80), st.integers(1, 30))
def test_memory_replayed_then_advanced_rebuilds_it_exactly(events, cut, max_entries):
    """What the journey's changelog snapshots carry in pieces (agents/journey.py)."""
    straight = Deduplicator(10, max_entries=max_entries, bucket_ms=3)
    rebuilt = None
    answers, resumed = [], []
    for i, (event_id, t) in enumerate(events):
        if i == cut:
            rebuilt = Deduplicator(10, max_entries=max_entries, bucket_ms=3)
            for remembered, at in json.loads(json.dumps(straight.memory())):
                assert rebuilt.is_duplicate(remembered, at) is False
            rebuilt.advance(straight.watermark)
            assert len(rebuilt) == len(straight) and rebuilt.watermark == straight.watermark
        answers.append(straight.is_duplicate(event_id, t))
        if rebuilt is not None:
            resumed.append(rebuilt.is_duplicate(event_id, t))
    assert resumed == answers[cut:]
