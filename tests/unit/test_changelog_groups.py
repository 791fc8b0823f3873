"""State changelog groups: only complete groups apply; an unfinished batch is named for replay."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.changelog import CHUNK_BYTES, changelog_group, intent_record, replay_changelog


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
