"""DeadlineIndex: the same entries, in the same order, as a heap popped while heap[0] < cutoff."""

from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.deadlines import DeadlineIndex

EPOCH = 1_714_550_400_000

steps = st.lists(st.one_of(
    st.tuples(st.just("push"), st.integers(-5_000, 200_000), st.sampled_from("abcde")),
    st.tuples(st.just("pop"), st.integers(-5_000, 200_000)),
    st.tuples(st.just("jump"), st.integers(10**6, 10**9)),  # an idle partition's clock: far ahead
), max_size=80)
# Many entries a bucket (1,024 ms): a burst of sessions, or a restore pushing them in any order.
crowded = st.lists(st.one_of(
    st.tuples(st.just("push"), st.integers(0, 3_000), st.sampled_from("abcdefgh")),
    st.tuples(st.just("pop"), st.integers(0, 3_000)),
), max_size=300)


@settings(max_examples=300, deadline=None)
@given(st.one_of(steps, crowded))
def test_pop_before_gives_what_a_heap_gives(script):
    index, heap = DeadlineIndex(), []
    for step in script:
        if step[0] == "push":
            _, offset, key = step
            index.push(EPOCH + offset, key)
            heapq.heappush(heap, (EPOCH + offset, key))
        else:
            cutoff = EPOCH + step[1]
            expected = []
            while heap and heap[0][0] < cutoff:
                expected.append(heapq.heappop(heap))
            assert index.pop_before(cutoff) == expected


def test_entries_at_the_cutoff_stay():
    index = DeadlineIndex()
    index.push(EPOCH + 10, "a")
    index.push(EPOCH + 11, "b")
    assert index.pop_before(EPOCH + 11) == [(EPOCH + 10, "a")]
    assert index.pop_before(EPOCH + 11) == []
    assert index.pop_before(EPOCH + 12) == [(EPOCH + 11, "b")]
