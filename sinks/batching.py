"""When a sink's partial batch may go to ClickHouse before its wait is over.

A sink inserts a batch when it is full (`sink_batch_records` Kafka records or `sink_batch_bytes`),
when `sink_batch_wait_ms` has passed since its first record, or — the rule kept here — when the
sink has just worked off a backlog and has now read every partition it owns to its end. The tail
of a backlog then goes in at once instead of waiting a second for records that are not coming.

Why only after a backlog: a sink at trickle traffic is always caught up, and inserting each time it
is would make one ClickHouse part per handful of rows; waiting is what batches those. "After a
backlog" means the previous batch was full: records were arriving faster than batches close.

Worked example, batches of 2 records, wait 1 s, records r1..r5 already on the topic::

    take r1 r2                 -> full: insert (the sink is behind)
    take r3 r4                 -> full: insert
    take r5, partition at end  -> caught up after a full batch: insert now, not 1 s later
    take r6 (trickle), at end  -> previous batch was not full: wait up to 1 s for more
"""

from __future__ import annotations

from typing import Iterable


class CatchUp:
    """Which of a consumer's partitions are read to their end (librdkafka's partition EOF, with
    nothing received since), and whether the sink was behind when its last batch closed."""

    def __init__(self) -> None:
        self.at_end: set[int] = set()
        self.behind = False

    def received(self, partition: int) -> None:
        self.at_end.discard(partition)

    def reached_end(self, partition: int, assigned: Iterable[int]) -> bool:
        """Note the end of `partition`; True when the batch being filled should be inserted now:
        the sink was behind, and every assigned partition is read to its end."""
        self.at_end.add(partition)
        return self.behind and self.at_end.issuperset(assigned)

    def batch_closed(self, full: bool) -> None:
        self.behind = full
