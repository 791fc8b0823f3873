"""State changelog groups: only complete groups apply; an unfinished batch is named for replay; a
complete snapshot replaces everything before it, so the log before it may be gone."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.changelog import (CHUNK_BYTES, SnapshotSchedule, changelog_group, intent_record,
                              last_complete_snapshot, replay_changelog)


def test_a_group_ends_with_the_offset_its_state_reflects():
    group = changelog_group(41, [("wm", 5), ("s:a", {"x": 1})])
    assert replay_changelog(group) == ([("wm", 5), ("s:a", {"x": 1})], 41, None)


def test_large_changes_are_chunked_and_only_the_last_chunk_carries_the_offset():
    changes = [(f"s:{i}", "v" * 1000) for i in range(1000)]
    group = changelog_group(7, changes)
    assert len(group) > 1 and all(len(r) <= CHUNK_BYTES + 1100 for r in group)
    assert [json.loads(r)["offset"] for r in group] == [None] * (len(group) - 1) + [7]
    assert replay_changelog(group) == (changes, 7, None)


def test_a_group_cut_short_by_a_crash_is_ignored_and_its_intent_kept():
    first = changelog_group(10, [("wm", 1)])
    interrupted = [intent_record(20)] + changelog_group(20, [(f"s:{i}", "v" * 1000) for i in range(1000)])[:-1]
    assert replay_changelog(first + interrupted) == ([("wm", 1)], 10, 20)


def test_an_intent_followed_by_its_group_is_finished():
    log = [intent_record(3)] + changelog_group(3, [("wm", 9)])
    assert replay_changelog(log) == ([("wm", 9)], 3, None)


@given(st.lists(st.tuples(st.text(max_size=5), st.integers(-2**63, 2**64 - 1)), max_size=30), st.integers(0, 10**9))
def test_any_changes_round_trip(changes, offset):
    assert replay_changelog(changelog_group(offset, changes)) == (changes, offset, None)


def test_an_integer_beyond_64_bits_is_refused_rather_than_read_back_as_a_float():
    with pytest.raises(TypeError):
        changelog_group(1, [("k", 2**64)])


def test_a_snapshot_replaces_everything_before_it():
    log = changelog_group(1, [("a", 1), ("b", 2)]) + changelog_group(2, [("a", 3), ("c", 4)], snapshot=True)
    log += changelog_group(3, [("c", None)])
    assert replay_changelog(log) == ([("a", 3), ("c", 4), ("c", None)], 3, None)


def test_a_log_whose_head_is_gone_restores_from_its_last_snapshot():
    big_state = [(f"s:{i}", "v" * 1000) for i in range(600)]  # several chunks
    head = changelog_group(1, [(f"old:{i}", "v" * 1000) for i in range(600)]) + [intent_record(2)]
    snapshot = changelog_group(2, big_state + [("i:d1", "m1")], snapshot=True)
    tail = [intent_record(3)] + changelog_group(3, [("s:0", None)])
    whole = head + snapshot + tail
    assert len(head) > 3 and len(snapshot) > 2
    for cut in range(len(head) + 1):  # retention deleted any part of the head
        assert replay_changelog(whole[cut:]) == (big_state + [("i:d1", "m1"), ("s:0", None)], 3, None)


def test_a_snapshot_cut_short_by_a_crash_falls_back_to_the_one_before():
    first = changelog_group(1, [("a", 1)], snapshot=True) + changelog_group(2, [("b", 2)])
    crashed = [intent_record(3)] + changelog_group(3, [(f"s:{i}", "v" * 1000) for i in range(600)], snapshot=True)[:-1]
    assert replay_changelog(first + crashed) == ([("a", 1), ("b", 2)], 2, 3)
    redone = [intent_record(3)] + changelog_group(3, [("b", 3)])
    assert replay_changelog(first + crashed + redone) == ([("a", 1), ("b", 2), ("b", 3)], 3, None)


def test_a_group_left_unfinished_is_ignored_when_the_next_owner_flushes_without_an_intent():
    crashed = changelog_group(1, [(f"s:{i}", "v" * 1000) for i in range(600)])[:-1]
    idle_flush = changelog_group(1, [("wm", 5)])  # an idle advance has no input, so no intent
    assert replay_changelog(crashed + idle_flush) == ([("wm", 5)], 1, None)


def test_the_last_complete_snapshot_is_found_from_the_first_bytes_of_the_records():
    snapshot = changelog_group(1, [(f"s:{i}", "v" * 1000) for i in range(600)], snapshot=True)
    crashed = [intent_record(2)] + snapshot[:-1]
    assert last_complete_snapshot(snapshot + crashed) == 0
    assert last_complete_snapshot(snapshot + crashed + changelog_group(2, [("a", 1)])) == 0
    assert last_complete_snapshot(crashed) is None
    assert last_complete_snapshot([intent_record(1)] + changelog_group(1, [("a", 1)], snapshot=True)) == 1


# A log written the way the agents write it: each flush is an intent, then a group of changes, or of
# the whole state (a snapshot), or a crash that cuts the group short; an idle flush has no intent.
flushes = st.lists(st.tuples(st.sampled_from(["changes", "idle", "snapshot", "crash", "crashed snapshot"]),
                             st.dictionaries(st.sampled_from("abcdef"), st.none() | st.integers(0, 9), max_size=4)),
                   max_size=12)


@given(flushes, st.integers(0, 200))
def test_any_log_cut_before_its_last_complete_snapshot_restores_the_state_of_the_whole(flushes, cut):
    log: list[bytes] = []
    state: dict[str, int] = {}
    last_snapshot_at = None
    for offset, (kind, changes) in enumerate(flushes):
        if kind != "idle":
            log.append(intent_record(offset))
        if kind.startswith("crash"):
            log += changelog_group(offset, [(f"x{i}", "v" * 1000) for i in range(300)],
                                   snapshot=kind == "crashed snapshot")[:-1]
            continue
        state = {k: v for k, v in {**state, **changes}.items() if v is not None}
        if kind == "snapshot":
            last_snapshot_at = len(log)
            log += changelog_group(offset, sorted(state.items()), snapshot=True)
        else:
            log += changelog_group(offset, sorted(changes.items()))
    assert last_complete_snapshot(log) == last_snapshot_at
    cut = min(cut, last_snapshot_at if last_snapshot_at is not None else 0)
    changes, _, _ = replay_changelog(log[cut:])
    assert {k: v for k, v in dict(changes).items() if v is not None} == state


def test_snapshots_come_first_then_when_the_changes_outgrow_the_last_one_or_it_is_old():
    schedule = SnapshotSchedule(interval_s=60, min_bytes=100)
    assert schedule.due(0)  # a new owner's first flush
    schedule.wrote([b"x" * 150], True, 0)
    schedule.wrote([b"x" * 100], False, 1)
    assert not schedule.due(1)  # 100 bytes of changes against a 150-byte snapshot
    schedule.wrote([b"x" * 60], False, 2)
    assert schedule.due(2)
    schedule.wrote([b"x" * 10], True, 2)
    schedule.wrote([b"x" * 99], False, 3)
    assert not schedule.due(61) and schedule.due(62)  # min_bytes, then the interval
