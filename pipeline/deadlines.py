"""Deadlines: (deadline ms, id) entries, taken out in order once a cutoff passes them.

The session and visit trackers close by these. A heap would do, but with tens of thousands of
open sessions every pop sifts through some fifteen levels of entries that are cold in the cache,
and comparing two epoch-ms ints is a slow path in CPython (they do not fit one digit). Here an
entry is appended to the list of its bucket (about a second of deadlines), and `pop_before` sorts
only the few entries of each expired bucket. What comes out is what heappop would give: every
entry with deadline < cutoff, in (deadline, id) order, so closing order does not change.
"""

from __future__ import annotations

from typing import Final, cast

BUCKET_BITS: Final = 10  # buckets of 1,024 ms: a handful of entries each; a shift is cheaper than //
INSERTION_SORT_MAX: Final = 32  # entries; a bigger bucket (a restore, a burst) goes to list.sort()

Deadline = tuple[int, str]  # (deadline ms, id)


class DeadlineIndex:
    """Entries filed by deadline bucket; lazy like a heap: stale entries are the caller's to skip."""

    __slots__ = ("_buckets", "_lowest")

    def __init__(self) -> None:
        # deadline >> BUCKET_BITS -> [deadline, id, deadline, id, ...]: flat, not a tuple per entry
        # (entries live for minutes; every long-lived tuple costs the collector cache misses to unlink)
        self._buckets: dict[int, list[int | str]] = {}
        self._lowest: int | None = None                 # no bucket below this one holds entries

    def push(self, deadline: int, key: str) -> None:
        bucket = deadline >> BUCKET_BITS
        entries = self._buckets.get(bucket)
        if entries is None:
            self._buckets[bucket] = [deadline, key]
            if self._lowest is None or bucket < self._lowest:
                self._lowest = bucket
        else:
            entries.append(deadline)
            entries.append(key)

    def pop_before(self, cutoff: int) -> list[Deadline]:
        """Remove and return the entries with deadline < cutoff, sorted by (deadline, id)."""
        lowest, buckets = self._lowest, self._buckets
        at_cutoff = cutoff >> BUCKET_BITS  # the bucket the cutoff falls in: split, not taken whole
        if lowest is None or lowest > at_cutoff:
            return []
        expired: list[Deadline] = []
        for bucket in self._buckets_between(lowest, at_cutoff):
            # buckets come in order: sorting within each one orders them all
            expired += _sorted_pairs(buckets[bucket])
            del buckets[bucket]
        split = buckets.get(at_cutoff)
        if split:
            pairs = _sorted_pairs(split)
            due = 0
            while due < len(pairs) and pairs[due][0] < cutoff:
                due += 1
            if due:
                expired += pairs[:due]
                split[:] = [item for pair in pairs[due:] for item in pair]
        self._lowest = at_cutoff if buckets else None
        return expired

    def _buckets_between(self, lowest: int, at_cutoff: int) -> list[int]:
        """The filed buckets in [lowest, at_cutoff), in order; by range while buckets are dense
        (a watermark that moves by seconds), by sorting when the cutoff jumps far (close to idle)."""
        if at_cutoff - lowest <= len(self._buckets):
            return [bucket for bucket in range(lowest, at_cutoff) if bucket in self._buckets]
        return sorted(bucket for bucket in self._buckets if bucket < at_cutoff)

    def clear(self) -> None:
        self._buckets.clear()
        self._lowest = None


def _sorted_pairs(entries: list[int | str]) -> list[Deadline]:
    """[deadline, id, deadline, id, ...] -> [(deadline, id), ...] sorted.

    By insertion while the bucket is small (a handful of entries, pushed nearly in deadline order):
    compiled, that compares machine ints, where sorted() compares tuples of Python ints; and most
    buckets hold one or two entries, for which building and sorting a list costs more than the rest
    of closing (measured under callgrind, see the README's Performance section)."""
    if len(entries) > 2 * INSERTION_SORT_MAX:
        pairs = [(cast(int, entries[i]), cast(str, entries[i + 1])) for i in range(0, len(entries), 2)]
        pairs.sort()
        return pairs
    pairs = []
    for i in range(0, len(entries), 2):
        deadline, key = cast(int, entries[i]), cast(str, entries[i + 1])
        j = len(pairs)
        while j:
            before, before_key = pairs[j - 1]
            if before < deadline or (before == deadline and before_key <= key):
                break
            j -= 1
        pairs.insert(j, (deadline, key))
    return pairs
