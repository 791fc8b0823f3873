"""The ingest agent: ingress topics -> validate, hash, dedup (pipeline.ingest) -> accepted / dlq.

Per batch of Kafka records: run the pure stage per input partition; send the accepted events (as
batch records partitioned by routing key) and the dead letters, and wait for the broker's acks;
only then append the changelog: per input partition, the event ids it accepted and the last input
offset they reflect, in one record per partition *number* (the five ingress topics' partition p
share changelog partition p: four records a batch rather than twenty, which matters on a broker
that pays per record batch). Then the batch's offsets are committed.

Why this order: the dedup memory must never know an event whose output is not stored (a restart
would call it a duplicate and lose it). After a crash between the two steps, the input is read
again and re-sent (at-least-once; the next stages are idempotent). A restarted worker skips input
at or below the changelog's offset, so its counts match the first run exactly.

It runs in a thread of the worker on confluent-kafka, in the consumer group `<prefix>-ingest`, not
as a faust agent: faust spent ~140 us of machinery on every record (asyncio tasks and futures,
message and event objects), 14 of the 17.8 s of CPU the agent took for 100,000 one-event records,
where confluent-kafka takes a few. A partition that this group has never committed starts where
the faust agent's group (`<prefix>-pipeline`, workers before this change) had committed it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import defaultdict
from typing import Any

import orjson
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from agents import metrics
from agents.app import group_consumer
from agents.changelog import read_partitions
from agents.lag import ingest_group, pipeline_group
from pipeline.config import Settings
from pipeline.ingest import IngestResult, IngestStage, routing_key
from pipeline.privacy import IdentifierHasher
from pipeline.serde import EventCodec, registry_from_settings
from pipeline.topics import ACCEPTED, DLQ, INGEST_DEDUP_CHANGELOG, JOURNEY_PARTITIONS, ingress_topics, partition_for

log = logging.getLogger(__name__)

# The journey wraps accepted records into o2o.resolved records of 512 KiB: keep both under 1 MB.
ACCEPTED_RECORD_BYTES = 512 * 1024

TP = tuple[str, int]  # (topic, partition)


class Stopping(Exception):
    """The worker stops while a batch's records are unacknowledged: leave it uncommitted."""


class IngestAgent(threading.Thread):
    """Consume a batch, run it through the stages of its partitions, publish, log state, commit."""

    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        super().__init__(name="ingest", daemon=True)
        self.settings, self.stop = settings, stop
        self.codec = EventCodec(registry_from_settings(settings))
        self.hasher = IdentifierHasher(settings.effective_hash_secret)
        self.policy = settings.validation_policy()
        self.stages: dict[TP, IngestStage] = {}
        self.restored_offsets: dict[TP, int] = {}
        self.accepted = settings.topic(ACCEPTED)
        self.dlq = settings.topic(DLQ)
        self.changelog = settings.topic(INGEST_DEDUP_CHANGELOG)
        self.delivery_errors: list[Any] = []

    def run(self) -> None:
        try:
            self.consume()
        except Stopping:
            pass
        except Exception:  # a bug or a lost broker: take the worker down; the batch was not committed
            log.exception("the ingest agent crashed; stopping the worker")
            os.kill(os.getpid(), signal.SIGTERM)

    def consume(self) -> None:
        settings = self.settings
        consumer = group_consumer(settings, ingest_group(settings), settings.kafka_fetch_max_wait_ms)
        producer = Producer({**settings.kafka_client_config(), "enable.idempotence": True, "linger.ms": 5})
        consumer.subscribe(list(ingress_topics(settings).values()), on_assign=self.assigned, on_revoke=self.revoked)
        try:
            while not self.stop.is_set():
                messages = consumer.consume(settings.agent_batch_records, timeout=settings.agent_batch_wait_ms / 1000)
                batch = []
                for message in messages:
                    if message.error() is None:
                        batch.append(message)
                    else:
                        log.warning("ingest: consumer error %s", message.error())
                if batch:
                    self.process(batch, producer)
                    commit(consumer, next_offsets(batch))
        finally:
            consumer.close()
            producer.flush(10)

    # --- partitions ----------------------------------------------------------------------------------

    def assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Restore the dedup memory of the new partitions (one changelog read for all of them), and
        start partitions this group never committed where the faust agent's group left them."""
        tps = {(tp.topic, tp.partition) for tp in partitions}
        logs = read_partitions(self.settings, self.changelog, sorted({p for _, p in tps}))
        dedups = {tp: self.settings.new_deduplicator() for tp in tps}
        for records in logs.values():
            for record in records:
                for entry in orjson.loads(record):
                    tp = (entry["topic"], entry["partition"])
                    if tp in dedups:
                        for event_id, occurred_at in entry["ids"]:
                            dedups[tp].is_duplicate(event_id, occurred_at)
                        self.restored_offsets[tp] = entry["offset"]
            metrics.STATE_RESTORES.labels("ingest").inc(len(records))
        for tp, dedup in dedups.items():
            self.stages[tp] = IngestStage(self.codec, self.hasher, self.policy, dedup)
        consumer.assign(self.starting_offsets(consumer, partitions))

    def starting_offsets(self, consumer: Consumer, partitions: list[TopicPartition]) -> list[TopicPartition]:
        committed = consumer.committed(partitions, timeout=30)
        fresh = [tp for tp in committed if tp.offset < 0]
        if not fresh:
            return committed
        admin = AdminClient(self.settings.kafka_client_config())
        request = ConsumerGroupTopicPartitions(pipeline_group(self.settings), [TopicPartition(tp.topic, tp.partition)
                                                                            for tp in fresh])
        try:
            earlier = admin.list_consumer_group_offsets([request])[request.group_id].result(timeout=30)
        except KafkaException as exc:  # no such group: a deployment that never ran the faust agent
            log.debug("no offsets of %s to start from: %s", request.group_id, exc)
            return committed
        offsets = {(tp.topic, tp.partition): tp.offset for tp in earlier.topic_partitions if tp.offset >= 0}
        for tp in fresh:
            tp.offset = offsets.get((tp.topic, tp.partition), tp.offset)
        return committed

    def revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.stages.pop((tp.topic, tp.partition), None)
            self.restored_offsets.pop((tp.topic, tp.partition), None)

    # --- one batch -----------------------------------------------------------------------------------

    def process(self, messages: list, producer: Producer) -> None:
        settings = self.settings
        metrics.BATCH_RECORDS.labels("ingest").observe(len(messages))
        started = time.perf_counter()
        now_ms = int(time.time() * 1000)
        by_partition: dict[TP, IngestResult] = defaultdict(IngestResult)
        last_offsets: dict[TP, int] = {}
        appended_at: dict[str, int] = {}  # event id -> its ingress record's timestamp (ms)
        for message in messages:
            tp, offset = (message.topic(), message.partition()), message.offset()
            if offset <= self.restored_offsets.get(tp, -1):
                continue  # already reflected in the restored state and its outputs
            result = by_partition[tp]
            before = len(result.accepted)
            self.stages[tp].ingest_record(message.value(), now_ms, result, tp[0], tp[1], offset)
            appended = message.timestamp()[1]
            for accepted_event in result.accepted[before:]:
                appended_at[accepted_event["event_id"]] = appended
            last_offsets[tp] = offset
        total = IngestResult()
        for result in by_partition.values():
            total.accepted += result.accepted
            total.duplicates += result.duplicates
            total.dead_letters += result.dead_letters
        processed = time.perf_counter()
        # An accepted record carries the earliest ingress append time of its events as its
        # timestamp: the journey measures trigger latency from it.
        for partition, value, appended in encode_accepted(self.codec, total.accepted, JOURNEY_PARTITIONS,
                                                          settings.output_batch_events, appended_at):
            self.send(producer, self.accepted, value, partition, appended)
        for dead in total.dead_letters:
            self.send(producer, self.dlq, self.codec.encode_dead_letter(dead.to_record(now_ms)))
        self.acknowledged(producer)
        sent = time.perf_counter()
        entries: dict[int, list[dict]] = defaultdict(list)
        for tp, result in by_partition.items():
            entries[tp[1]].append({"topic": tp[0], "partition": tp[1], "offset": last_offsets[tp],
                                   "ids": [[e["event_id"], e["occurred_at"]] for e in result.accepted]})
        for partition, group in entries.items():
            self.send(producer, self.changelog, orjson.dumps(group), partition)
        self.acknowledged(producer)
        metrics.STEP_SECONDS.labels("ingest", "process").inc(processed - started)
        metrics.STEP_SECONDS.labels("ingest", "outputs").inc(sent - processed)
        metrics.STEP_SECONDS.labels("ingest", "changelog").inc(time.perf_counter() - sent)
        metrics.record_ingest(total)

    def send(self, producer: Producer, topic: str, value: bytes, partition: int | None = None,
             timestamp_ms: int | None = None) -> None:
        extra = {"partition": partition} if partition is not None else {}
        if timestamp_ms is not None and timestamp_ms > 0:
            extra["timestamp"] = timestamp_ms
        while True:
            try:
                producer.produce(topic, value, on_delivery=self.delivered, **extra)
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.05)

    def delivered(self, error: Any, _message: Any) -> None:
        if error is not None:
            self.delivery_errors.append(error)

    def acknowledged(self, producer: Producer) -> None:
        """Wait until the broker has acknowledged everything sent; any failure fails the batch."""
        while producer.flush(1):
            if self.stop.is_set():
                raise Stopping()
        if self.delivery_errors:
            errors, self.delivery_errors = self.delivery_errors, []
            raise KafkaException(errors[0])


def commit(consumer: Consumer, offsets: list[TopicPartition]) -> None:
    """Commit after a batch. A rebalance under way refuses it: that is no error, since the batch's
    outputs are stored and the changelog's offsets keep the next owner from processing it again."""
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    except KafkaException as exc:
        log.warning("ingest: offsets not committed (%s); the changelog has them", exc.args[0])


def next_offsets(messages: list) -> list[TopicPartition]:
    """What to commit after a batch: per partition, the offset after its last message."""
    last: dict[TP, int] = {}
    for message in messages:
        last[(message.topic(), message.partition())] = message.offset()
    return [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in last.items()]


def encode_accepted(codec: EventCodec, events: list[dict], partitions: int, per_record: int,
                    appended: dict[str, int]):
    """(partition, record value, earliest ingress timestamp) triples: events grouped by routing
    partition, `per_record` at most per record and within ACCEPTED_RECORD_BYTES; `appended` maps
    event id -> ingress record timestamp."""
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
