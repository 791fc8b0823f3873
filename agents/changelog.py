"""Reading a topic to its end exactly: agent state restores and `o2o dlq`.

Why not faust Tables for state: their recovery reads a changelog only up to the end offset that
ListOffsets reports, and the local broker (Tansu 0.6.0) under-reports it, so a restored table
silently misses its tail (DESIGN.md). Here reading stops at librdkafka's partition EOF, which it
signals when the fetch position reaches the high watermark carried in Fetch responses: right on
Tansu and on Apache Kafka alike.
"""

from __future__ import annotations

import time
import uuid
from typing import Iterator

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from pipeline.config import Settings


def read_to_end(settings: Settings, topic: str | list[str], partitions: list[int] | None = None,
                follow: bool = False, timeout_s: float = 60.0) -> Iterator[Message]:
    """Every message of `topic` (or of the given partitions; or of several topics, all partitions)
    from the beginning to the end; in offset order per partition.

    With `follow`, keeps waiting for new messages after the end (until the caller stops iterating).
    """
    topics = [topic] if isinstance(topic, str) else list(topic)
    consumer = _reader(settings)
    try:
        assigned = [(name, p) for name in topics
                    for p in (partitions if partitions is not None else _partitions_of(consumer, name))]
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for name, p in assigned])
        open_partitions = set(assigned)
        deadline = time.monotonic() + timeout_s
        while open_partitions or follow:
            message = consumer.poll(0.5)
            if message is None:
                if not follow and time.monotonic() > deadline:
                    raise TimeoutError(f"reading {', '.join(topics)} got no end-of-partition answer "
                                       f"within {timeout_s:.0f} s")
                continue
            error = message.error()
            if error is None:
                yield message
            elif error.code() == KafkaError._PARTITION_EOF:
                open_partitions.discard((message.topic(), message.partition()))
            else:
                raise KafkaException(error)
    finally:
        consumer.close()


def _reader(settings: Settings) -> Consumer:
    """A consumer for assign() reads that tells when it reaches a partition's end."""
    return Consumer({
        **settings.kafka_client_config(),
        "group.id": f"o2o-reader-{uuid.uuid4().hex[:8]}",  # assign() only; the group is never joined
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    })


def _partitions_of(consumer: Consumer, topic: str) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    if metadata.error is not None:
        raise KafkaException(metadata.error)
    return sorted(metadata.partitions)


def read_partitions(settings: Settings, topic: str, partitions: list[int]) -> dict[int, list[bytes]]:
    """Every record value of several partitions with one consumer: {partition: values in offset order}."""
    values: dict[int, list[bytes]] = {partition: [] for partition in partitions}
    for message in read_to_end(settings, topic, partitions):
        values[message.partition()].append(message.value())
    return values


# --- state changelogs written in groups ------------------------------------------------------------
# One flush of an agent's state is a *group* of JSON records, {"begin":true,"offset":null,"changes":
# [[key, value], ...]}, {"offset":null,...} ... and a last one with the input offset the state now
# reflects. A restore applies complete groups only: a crash in the middle of writing a group leaves
# a tail without its offset record, which is ignored (its input is read and processed again), as
# the next owner's intent or group begins.
#
# A *snapshot* group holds the whole state, not the changes; it begins {"snapshot":true,. It
# replaces everything before it, so the log before the last complete snapshot is never needed: a
# restore reads only from there (`read_changelog_tail`), and retention may delete the rest. An
# agent writes one on its first flush after a restore, when its changes since the last snapshot
# outgrow that snapshot, and at least every `state_snapshot_interval_ms` (SnapshotSchedule).

CHUNK_BYTES = 256 * 1024
SNAPSHOT_START = b'{"snapshot":true,'
GROUP_START = b'{"begin":true,'
INTENT_START = b'{"intent":'


def changelog_group(offset: int, changes: list[tuple[str, object]], snapshot: bool = False) -> list[bytes]:
    """Record values for one flush: chunks of changes, the last carrying `offset`; with `snapshot`,
    `changes` are the whole state and the first chunk says so.

    Values are JSON data whose integers fit in 64 bits (orjson raises TypeError on larger ones
    rather than write what it would read back as a float)."""
    start = SNAPSHOT_START if snapshot else GROUP_START
    records: list[bytes] = []
    # Items go straight into the chunk: keeping each item's bytes until a join took fresh pages of
    # memory for every one (3-4 times the time).
    chunk = bytearray()
    for key, value in changes:
        item = orjson.dumps([key, value], option=orjson.OPT_NON_STR_KEYS)
        if chunk and len(chunk) + len(item) >= CHUNK_BYTES:
            records.append(_group_record(b"{" if records else start, chunk, None))
            chunk = bytearray()
        if chunk:
            chunk += b","
        chunk += item
    records.append(_group_record(b"{" if records else start, chunk, offset))
    return records


def _group_record(start: bytes, items: bytearray, offset: int | None) -> bytes:
    """A record of a group: `items` are its changes as JSON, separated by commas."""
    return b'%s"offset":%s,"changes":[%s]}' % (start, b"null" if offset is None else b"%d" % offset, items)


def intent_record(last_offset: int) -> bytes:
    """Written before a batch's outputs: the batch ends at `last_offset` (see `replay_changelog`)."""
    return b'{"intent":%d}' % last_offset


def last_complete_snapshot(values: list[bytes]) -> int | None:
    """Index of the first record of the last complete snapshot group in `values`, or None. Reads
    only the records' first bytes: a group record ends its group unless it says "offset":null."""
    end_ahead = False  # a record ending the group that starts here comes before any intent or group start
    for index in range(len(values) - 1, -1, -1):
        value = values[index]
        if value.startswith(INTENT_START):
            end_ahead = False
            continue
        if b'"offset":null' not in value[:len(SNAPSHOT_START) + 16]:
            end_ahead = True
        if value.startswith(SNAPSHOT_START) and end_ahead:
            return index
        if value.startswith((SNAPSHOT_START, GROUP_START)):
            end_ahead = False
    return None


def replay_changelog(values: list[bytes]) -> tuple[list[tuple[str, object]], int | None, int | None]:
    """(changes of complete groups in order, the last complete group's offset, an unfinished intent).

    The intent is the last offset of a batch whose outputs may be partly published but whose
    state was never written: the agent must process exactly that batch again, so that it publishes
    the same outputs and leaves no version behind that an uninterrupted run would not have.

    The changes start at the last complete snapshot (only the records from there on are parsed):
    the log before it may have been deleted by retention, or cut anywhere.
    """
    applied: list[tuple[str, object]] = []
    pending: list[tuple[str, object]] = []
    offset = intent = None
    for value in values[last_complete_snapshot(values) or 0:]:
        record = orjson.loads(value)
        if "intent" in record:
            intent, pending = record["intent"], []
            continue
        if "begin" in record or "snapshot" in record:
            pending = []  # what an unfinished group left (its writer crashed)
        pending.extend((key, item) for key, item in record["changes"])
        if record["offset"] is not None:
            applied.extend(pending)
            pending = []
            offset = record["offset"]
            intent = None
    return applied, offset, intent


def read_changelog_tail(settings: Settings, topic: str, partition: int, window: int = 1024) -> list[bytes]:
    """The record values of a group changelog's partition from its last complete snapshot on (all
    of them when it has none): read from the end back in windows of `window` records, four times
    longer each time, so a restore reads about the state and the changes since, whatever retention
    keeps."""
    consumer = _reader(settings)
    try:
        first = _read_from(consumer, topic, partition, OFFSET_BEGINNING, stop_after_one=True)
        if not first:
            return []
        low = first[0].offset()
        # The end as the Fetch response gave it (ListOffsets under-reports it on the local broker).
        high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)[1]
        if high <= low:
            high = low + 1
        while True:
            start = max(low, high - window)
            values = [message.value() for message in _read_from(consumer, topic, partition, start)]
            snapshot = last_complete_snapshot(values)
            if snapshot is not None or start == low:
                return values[snapshot or 0:]
            window *= 4
    finally:
        consumer.close()


def _read_from(consumer: Consumer, topic: str, partition: int, offset: int, stop_after_one: bool = False,
               timeout_s: float = 60.0) -> list[Message]:
    """Messages of one partition from `offset` to its end (or the first one only)."""
    consumer.assign([TopicPartition(topic, partition, offset)])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        error = message.error()
        if error is None:
            if offset >= 0 and message.offset() < offset:
                continue  # fetched for an earlier assignment
            messages.append(message)
            if stop_after_one:
                return messages
        elif error.code() == KafkaError._PARTITION_EOF:
            if not messages or message.offset() > messages[-1].offset():
                return messages
        else:
            raise KafkaException(error)
    raise TimeoutError(f"reading {topic} [{partition}] got no end-of-partition answer within {timeout_s:.0f} s")


class SnapshotSchedule:
    """When an agent flushes its whole state (a snapshot group) instead of its changes: on its first
    flush (a new owner compacts the log it restored from), when the changes written since the last
    snapshot outgrow max(`min_bytes`, that snapshot's size), so a restore reads at most about twice
    the state, and at least every `interval_s`, so retention never deletes the last snapshot."""

    def __init__(self, interval_s: float, min_bytes: int) -> None:
        self.interval_s = interval_s
        self.min_bytes = min_bytes
        self.last_at: float | None = None  # time.monotonic() of the last snapshot
        self.last_bytes = 0
        self.bytes_since = 0

    def due(self, now_s: float) -> bool:
        return (self.last_at is None or now_s - self.last_at >= self.interval_s
                or self.bytes_since >= max(self.min_bytes, self.last_bytes))

    def wrote(self, group: list[bytes], snapshot: bool, now_s: float) -> None:
        size = sum(map(len, group))
        if snapshot:
            self.last_at, self.last_bytes, self.bytes_since = now_s, size, 0
        else:
            self.bytes_since += size
