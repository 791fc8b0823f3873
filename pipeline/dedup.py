"""Duplicate detection by event_id within an event-time window, in bounded memory.

Why event time: the same input replayed gives the same answers (a restart that re-reads a topic
decides exactly as the first run did), and no wall clock enters the pure core.

The *watermark* is the largest occurred_at seen so far. An event_id is remembered from its first
sighting until the watermark has moved `window_ms` past the watermark at that sighting, counted in
whole buckets: ids first seen while the watermark is in bucket b (= watermark // bucket_ms) are
forgotten when the watermark reaches bucket b + ceil(window_ms / bucket_ms) + 1. So an on-time
event is remembered for `window_ms` of event time after it occurred, and a late one (a gateway
uploading an hour late) for `window_ms` after it arrived, so its redelivery is caught too. Late
events are never dropped here; the caller stores and counts them.

Worked example, window 10 min, bucket 1 min (times in minutes):

    event  occurred_at  watermark after  result
    a      0            0                new
    b      5            5                new
    a      0            5                duplicate
    d      -50          5                new         (late: remembered until the watermark passes 15)
    c      11           11               new         (a is forgotten: the watermark passed 0 + 10)
    a      0            11               new         (sinks are idempotent, so this is harmless)
    d      -50          11               duplicate

An event far in the future moves the watermark and shortens memory for everything else, which is
why validation bounds the skew; keep `window_ms` well above `max_future_skew_ms`.

Memory is bounded by `max_entries`: past it, the oldest ids are forgotten first, so under a very
high rate the effective window is about `max_entries / rate`. Work per event is O(1) amortised: ids
sit in per-bucket deques in arrival order, and expiry drops whole buckets from the old end.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterable

SNAPSHOT_FORMAT = 1
_NO_WATERMARK = -(2**63)


class Deduplicator:
    """`is_duplicate(event_id, occurred_at)` answers and remembers; `split(events)` does a batch."""

    __slots__ = (
        "window_ms", "bucket_ms", "max_entries",
        "_window_buckets", "_seen", "_buckets", "_current", "_watermark", "_head",
    )

    def __init__(self, window_ms: int = 600_000, max_entries: int = 1_000_000, bucket_ms: int | None = None) -> None:
        bucket_ms = bucket_ms if bucket_ms is not None else max(1, window_ms // 60)
        if window_ms < 1:
            raise ValueError(f"dedup window_ms must be >= 1, got {window_ms}")
        if max_entries < 1:
            raise ValueError(f"dedup max_entries must be >= 1, got {max_entries}")
        if not 1 <= bucket_ms <= window_ms:
            raise ValueError(f"dedup bucket_ms must be between 1 and window_ms ({window_ms}), got {bucket_ms}")
        self.window_ms = window_ms
        self.bucket_ms = bucket_ms
        self.max_entries = max_entries
        self._window_buckets = -(-window_ms // bucket_ms)  # ceil: never remember for less than window_ms
        self._seen: set[str] = set()
        # (bucket number, ids first seen while the watermark was in that bucket), oldest first.
        self._buckets: deque[tuple[int, deque[str]]] = deque()
        self._current: deque[str] = deque()
        self._watermark = _NO_WATERMARK
        self._head = _NO_WATERMARK  # bucket number of the watermark

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def watermark(self) -> int | None:
        return None if self._watermark == _NO_WATERMARK else self._watermark

    def is_duplicate(self, event_id: str, occurred_at: int) -> bool:
        """True if `event_id` was seen within the window; otherwise remember it and return False."""
        seen = self._seen
        if event_id in seen:
            return True
        if occurred_at > self._watermark:
            self._advance(occurred_at)
        seen.add(event_id)
        self._current.append(event_id)
        if len(seen) > self.max_entries:
            self._forget_oldest()
        return False

    def split(self, events: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(new events, duplicates) in input order; a repeat within the batch is a duplicate too."""
        fresh: list[dict[str, Any]] = []
        duplicates: list[dict[str, Any]] = []
        is_duplicate = self.is_duplicate
        for event in events:
            (duplicates if is_duplicate(event["event_id"], event["occurred_at"]) else fresh).append(event)
        return fresh, duplicates

    def _advance(self, occurred_at: int) -> None:
        self._watermark = occurred_at
        head = occurred_at // self.bucket_ms
        if head == self._head:
            return
        self._head = head
        self._current = deque()
        self._buckets.append((head, self._current))
        self._expire_before(head - self._window_buckets)

    def _expire_before(self, cutoff_bucket: int) -> None:
        buckets, seen = self._buckets, self._seen
        while buckets[0][0] < cutoff_bucket:
            _, ids = buckets.popleft()
            seen.difference_update(ids)

    def _forget_oldest(self) -> None:
        bucket, ids = self._buckets[0]
        self._seen.discard(ids.popleft())
        if not ids and len(self._buckets) > 1:
            self._buckets.popleft()

    # --- persistence ---------------------------------------------------------------------------

    def memory(self) -> list[list[Any]]:
        """The ids remembered, oldest first, each as [event id, start of its bucket in ms]: fed in
        order to `is_duplicate` of a fresh deduplicator with the same window, followed by
        `advance(watermark)`, they rebuild this one exactly (the same ids in the same buckets).
        A changelog can carry this in pieces, which one `snapshot()` value cannot be."""
        return [[event_id, bucket * self.bucket_ms] for bucket, ids in self._buckets for event_id in ids]

    def advance(self, watermark: int | None) -> None:
        """Move the watermark to `watermark` if that is later (see `memory`)."""
        if watermark is not None and watermark > self._watermark:
            self._advance(watermark)

    def snapshot(self) -> dict[str, Any]:
        """Plain, JSON-serialisable state; `Deduplicator.restore(snapshot)` rebuilds it exactly."""
        return {
            "format": SNAPSHOT_FORMAT,
            "window_ms": self.window_ms,
            "bucket_ms": self.bucket_ms,
            "max_entries": self.max_entries,
            "watermark": self.watermark,
            "buckets": [[bucket, list(ids)] for bucket, ids in self._buckets if ids],
        }

    @classmethod
    def restore(cls, snapshot: dict[str, Any], max_entries: int | None = None) -> "Deduplicator":
        """Rebuild from `snapshot()`. `max_entries` may change across a restart (oldest ids go first)."""
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"dedup snapshot format {snapshot.get('format')!r} is not {SNAPSHOT_FORMAT}; discard it")
        dedup = cls(snapshot["window_ms"], max_entries or snapshot["max_entries"], snapshot["bucket_ms"])
        for bucket, ids in snapshot["buckets"]:
            dedup._buckets.append((bucket, deque(ids)))
            dedup._seen.update(ids)
        if snapshot["watermark"] is not None:
            dedup._watermark = snapshot["watermark"]
            dedup._head = snapshot["watermark"] // dedup.bucket_ms
            if dedup._buckets and dedup._buckets[-1][0] == dedup._head:
                dedup._current = dedup._buckets[-1][1]
            else:
                dedup._buckets.append((dedup._head, dedup._current))
        while len(dedup._seen) > dedup.max_entries:
            dedup._forget_oldest()
        return dedup
