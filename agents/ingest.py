"""The ingest agent: ingress topics -> validate, hash, dedup (pipeline.ingest) -> accepted / dlq.

Per batch of Kafka records: run the pure stage per input partition; send the accepted events (as
batch records partitioned by routing key) and the dead letters, and wait for the broker's acks;
only then append the changelog: per input partition, the event ids it accepted and the last input
offset they reflect, in one record per partition *number* (the five ingress topics' partition p
share changelog partition p: four records a batch rather than twenty, which matters on a broker
that pays per record batch). Then the batch is acked and its offsets may be committed.

Why this order: the dedup memory must never know an event whose output is not stored (a restart
would call it a duplicate and lose it). After a crash between the two steps, the input is read
again and re-sent (at-least-once; the next stages are idempotent). A restarted worker skips input
at or below the changelog's offset, so its counts match the first run exactly.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any, Awaitable, Callable

import faust
import orjson
from faust.types import TP

from agents import metrics
from agents.changelog import read_partitions
from pipeline.config import Settings
from pipeline.ingest import IngestResult, IngestStage, routing_key
from pipeline.privacy import IdentifierHasher
from pipeline.serde import EventCodec, registry_from_settings
from pipeline.topics import ACCEPTED, DLQ, JOURNEY_PARTITIONS, INGEST_DEDUP_CHANGELOG, ingress_topics, partition_for

# The journey wraps accepted records into o2o.resolved records of 512 KiB: keep both under 1 MB.
ACCEPTED_RECORD_BYTES = 512 * 1024


def raw_topic(app: faust.App, name: str, partitions: int) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                     partitions=partitions)


def raw_sender(app: faust.App) -> Callable[..., Awaitable[Awaitable[Any]]]:
    """`await send(topic, value, partition=None, timestamp=None)`: one record of a raw topic, straight
    to the app's producer; the result is the acknowledgement to await.

    faust's `Topic.send` wraps every record in message objects, callbacks and sensor updates: 200 us
    a record against 35 us this way (measured on the journey's trigger sends, one record each)."""
    async def send(topic: faust.TopicT, value: bytes, partition: int | None = None,
                   timestamp: float | None = None) -> Awaitable[Any]:
        return await app.producer.send(topic.get_topic_name(), None, value, partition, timestamp, None)
    return send


def register(app: faust.App, settings: Settings) -> None:
    n = settings.topic_partitions
    ingress = app.topic(*ingress_topics(settings).values(), key_type=bytes, value_type=bytes,
                        key_serializer="raw", value_serializer="raw")
    accepted = raw_topic(app, settings.topic(ACCEPTED), JOURNEY_PARTITIONS)
    dlq = raw_topic(app, settings.topic(DLQ), n)
    changelog = raw_topic(app, settings.topic(INGEST_DEDUP_CHANGELOG), n)
    codec = EventCodec(registry_from_settings(settings))
    send = raw_sender(app)
    hasher = IdentifierHasher(settings.effective_hash_secret)
    policy = settings.validation_policy()
    stages: dict[TP, IngestStage] = {}
    restored_offsets: dict[TP, int] = {}

    async def stage_for(tp: TP) -> IngestStage:
        """The partition's stage; on a miss, every assigned partition's dedup memory is restored
        from the changelog in one read (one consumer for all, not one per partition)."""
        stage = stages.get(tp)
        if stage is None:
            wanted = {tp} | {t for t in app.consumer.assignment() if t.topic in ingress.topics and t not in stages}
            await restore(wanted)
            stage = stages[tp]
        return stage

    async def restore(tps: set[TP]) -> None:
        logs = await asyncio.get_running_loop().run_in_executor(
            None, read_partitions, settings, changelog.get_topic_name(), sorted({tp.partition for tp in tps}))
        dedups = {tp: settings.new_deduplicator() for tp in tps}
        for records in logs.values():
            for record in records:
                for entry in orjson.loads(record):
                    tp = TP(entry["topic"], entry["partition"])
                    if tp in dedups:
                        for event_id, occurred_at in entry["ids"]:
                            dedups[tp].is_duplicate(event_id, occurred_at)
                        restored_offsets[tp] = entry["offset"]
            metrics.STATE_RESTORES.labels("ingest").inc(len(records))
        for tp, dedup in dedups.items():
            stages[tp] = IngestStage(codec, hasher, policy, dedup)

    @app.on_partitions_revoked.connect
    async def forget_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
        for tp in revoked:
            stages.pop(tp, None)
            restored_offsets.pop(tp, None)

    @app.agent(ingress, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        async for events in stream.take_events(settings.agent_batch_records, within=settings.agent_batch_wait_ms / 1000):
            metrics.BATCH_RECORDS.labels("ingest").observe(len(events))
            started = time.perf_counter()
            now_ms = int(time.time() * 1000)
            by_partition: dict[TP, IngestResult] = defaultdict(IngestResult)
            last_offsets: dict[TP, int] = {}
            appended_at: dict[str, float] = {}  # event id -> its ingress record's timestamp (s)
            for event in events:
                message = event.message
                tp = message.tp
                stage = await stage_for(tp)
                if message.offset <= restored_offsets.get(tp, -1):
                    continue  # already reflected in the restored state and its outputs
                result = by_partition[tp]
                before = len(result.accepted)
                stage.ingest_record(message.value, now_ms, result, message.topic, message.partition,
                                    message.offset)
                for accepted_event in result.accepted[before:]:
                    appended_at[accepted_event["event_id"]] = message.timestamp
                last_offsets[tp] = message.offset
            total = IngestResult()
            for result in by_partition.values():
                total.accepted += result.accepted
                total.duplicates += result.duplicates
                total.dead_letters += result.dead_letters
            processed = time.perf_counter()
            # An accepted record carries the earliest ingress append time of its events as its
            # timestamp: the journey measures trigger latency from it.
            outputs = [await send(accepted, value, partition, appended)
                       for partition, value, appended in encode_accepted(
                           codec, total.accepted, JOURNEY_PARTITIONS, settings.output_batch_events, appended_at)]
            outputs += [await send(dlq, codec.encode_dead_letter(dead.to_record(now_ms)))
                        for dead in total.dead_letters]
            await asyncio.gather(*outputs)
            sent = time.perf_counter()
            entries: dict[int, list[dict]] = defaultdict(list)
            for tp, result in by_partition.items():
                entries[tp.partition].append({"topic": tp.topic, "partition": tp.partition, "offset": last_offsets[tp],
                                              "ids": [[e["event_id"], e["occurred_at"]] for e in result.accepted]})
            state = [await send(changelog, orjson.dumps(group), partition)
                     for partition, group in entries.items()]
            await asyncio.gather(*state)
            metrics.STEP_SECONDS.labels("ingest", "process").inc(processed - started)
            metrics.STEP_SECONDS.labels("ingest", "outputs").inc(sent - processed)
            metrics.STEP_SECONDS.labels("ingest", "changelog").inc(time.perf_counter() - sent)
            metrics.record_ingest(total)


def encode_accepted(codec: EventCodec, events: list[dict], partitions: int, per_record: int,
                    appended: dict[str, float]):
    """(partition, record value, earliest ingress timestamp) triples: events grouped by routing
    partition, `per_record` at most per record and within ACCEPTED_RECORD_BYTES; `appended` maps
    event id -> ingress record timestamp (s)."""
    groups: dict[int, list[dict]] = defaultdict(list)
    for event in events:
        groups[partition_for(routing_key(event), partitions)].append(event)
    for partition, group in groups.items():
        for start in range(0, len(group), per_record):
            for chunk, value in fitting_values(codec, group[start:start + per_record]):
                yield partition, value, min(appended[e["event_id"]] for e in chunk)


def fitting_values(codec: EventCodec, chunk: list[dict]):
    """(events, value) pairs for `chunk`, halved until each value fits ACCEPTED_RECORD_BYTES."""
    value = codec.encode_accepted(chunk)
    if len(value) <= ACCEPTED_RECORD_BYTES or len(chunk) == 1:
        yield chunk, value
        return
    half = len(chunk) // 2
    yield from fitting_values(codec, chunk[:half])
    yield from fitting_values(codec, chunk[half:])
