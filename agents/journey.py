"""The journey agent: accepted events -> identity, sessions, visits (pipeline.journey) and trigger
rules (pipeline.rules) -> topics.

A single writer: `o2o.accepted` has one partition, because identity linking is global (README,
"Identity and sessions"). Per batch of records: decode; drop events whose id it has already seen
(a crash upstream re-sends accepted events); `JourneyProcessor.process`, then `RuleEngine.on_batch`
on the events as resolved to persons and the journey batch; wait until the previous batch is
wholly acknowledged; write an *intent* (the batch's last offset) to the changelog and wait for it;
publish the triggers (one topic per rule), the resolved-event envelopes for the sink, the session
and visit updates (open ones at most once per `open_update_interval_ms` each, latest version:
journey_records.OpenUpdates), the person merges and the trigger decisions; drain the state changes
of both (and the ids seen). Then, in the background while the next batch is decoded and processed
(`acknowledge`), wait for the outputs' acks and write those changes as one changelog group carrying
the last input offset (now and then the whole state instead, a snapshot: see agents/changelog.py).
Nothing of a batch is sent before the previous group is acknowledged, so the changelog still reads
intent, group, intent, group, and at most one batch is ever unfinished. (Waiting for the acks before
processing the next batch made the single writer idle for a round trip per batch: 14,800 against
17,100 events/s end to end, medians of eight alternated pairs, batched records.) The rules run here
rather than in an agent of their own:
they need each event with its person and the batch's session and visit changes together, and a
further hop would add a Kafka round trip to every trigger's latency.

A worker that takes the partition over restores the state from the complete groups, skips input at
or below their offset, and, when an intent was left unfinished, processes exactly that batch again
before anything else: the processor is deterministic, so it republishes the same versions and
leaves none behind that an uninterrupted run would not have. So a restart (kill -9 included) or a
rebalance neither loses nor double-counts: the sessions it publishes are those of an uninterrupted
run.

Each batch is processed in event-time order: arrival order inside a batch means little (five
ingress topics, many producers, records grouped by type), and a backlog read in type order would
otherwise push the watermark ahead and make on-time events look late.

A stream that goes quiet still closes sessions and fires due timers (share invites, firings held
over quiet hours): after `journey_idle_advance_ms` without events the watermark moves forward by
the wall time that passed. Timers are rule-engine state in the changelog, so they survive restarts.

Trigger latency (histogram `o2o_trigger_latency_seconds`): from the causing event's ingress append
(the accepted record's timestamp carries the earliest ingress append of its events) to the
trigger's acknowledged append, for triggers caused by events of the batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import faust
from faust.types import TP

from agents import metrics
from agents.app import collector_paused, raw_sender, raw_topic
from agents.changelog import (SnapshotSchedule, changelog_group, intent_record, read_changelog_tail,
                              replay_changelog)
from agents.journey_records import (OpenUpdates, by_partition, resolved_envelope, session_updates,
                                    trigger_decisions, trigger_key, visit_updates)
from pipeline.config import Settings
from pipeline.dedup import Deduplicator
from pipeline.journey import JourneyBatch, JourneyProcessor
from pipeline.rules import RuleEngine, RuleOutput
from pipeline.serde import EventCodec, registry_from_settings
from pipeline.topics import (ACCEPTED, IDENTITY, JOURNEY_CHANGELOG, JOURNEY_PARTITIONS, RESOLVED, SESSIONS,
                             TRIGGER_LOG, VISITS, partition_for, trigger_topics)


log = logging.getLogger(__name__)
occurred_at = itemgetter("occurred_at")
SEEN_KEY = "seen"  # changelog key of the event ids a batch sessionised (for the journey's dedup)
SEEN_WATERMARK_KEY = "seen_wm"  # in snapshots: the dedup watermark after the ids (Deduplicator.memory)
SEEN_PER_ITEM = 5_000
RESOLVED_RECORD_BYTES = 512 * 1024  # accepted records per o2o.resolved record: well under the 1 MB limit
RULES_PREFIX = "r."  # changelog keys of the rule engine's state


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class AcceptedRecord:
    """One o2o.accepted record of a batch: its value as it came, and its events decoded."""

    offset: int
    appended_s: float  # the earliest ingress append of its events (agents/ingest.py)
    value: bytes
    events: list[dict[str, Any]]


@dataclass(slots=True)
class BatchOutput:
    """What one batch (or an idle advance) publishes."""

    journey: JourneyBatch
    rules: RuleOutput
    records: list[AcceptedRecord] = field(default_factory=list)
    seen: list[list] = field(default_factory=list)  # [event id, occurred_at] of the events processed


class JourneyState:
    """The processors of the one partition this worker may own, and what is needed to resume them."""

    def __init__(self) -> None:
        self.processor: JourneyProcessor | None = None
        self.engine: RuleEngine | None = None
        self.seen: Deduplicator | None = None
        self.restored_offset = -1
        self.last_offset = -1
        self.replay_until: int | None = None  # an interrupted batch to process again, exactly
        self.replay: list[AcceptedRecord] = []
        self.last_event_wall_ms = now_ms()
        self.open_updates: OpenUpdates | None = None
        self.snapshots: SnapshotSchedule | None = None
        self.lock = asyncio.Lock()
        self.acknowledging: asyncio.Future | None = None  # the last batch's `acknowledge`, maybe in flight

    async def acknowledged(self) -> None:
        """Wait until the last batch's outputs and changelog group are acknowledged (raises its error)."""
        if self.acknowledging is not None:
            acknowledging, self.acknowledging = self.acknowledging, None
            await acknowledging


def register(app: faust.App, settings: Settings) -> None:
    n = settings.topic_partitions
    per_record = settings.output_batch_events
    accepted = raw_topic(app, settings.topic(ACCEPTED), JOURNEY_PARTITIONS)
    sessions_topic = raw_topic(app, settings.topic(SESSIONS), n)
    visits_topic = raw_topic(app, settings.topic(VISITS), n)
    identity_topic = raw_topic(app, settings.topic(IDENTITY), JOURNEY_PARTITIONS)
    resolved_topic = raw_topic(app, settings.topic(RESOLVED), n)
    decisions_topic = raw_topic(app, settings.topic(TRIGGER_LOG), n)
    rule_topics = {rule: raw_topic(app, name, n) for rule, name in trigger_topics(settings).items()}
    changelog = raw_topic(app, settings.topic(JOURNEY_CHANGELOG), JOURNEY_PARTITIONS)
    codec = EventCodec(registry_from_settings(settings))
    send = raw_sender(app)
    policy = settings.journey_policy()
    rules = settings.rules()
    state = JourneyState()

    async def restore() -> None:
        values = await asyncio.get_running_loop().run_in_executor(
            None, read_changelog_tail, settings, changelog.get_topic_name(), 0)
        changes, offset, intent = replay_changelog(values)
        metrics.STATE_RESTORES.labels("journey").inc(len(values))
        state.seen = settings.new_deduplicator()
        journey_changes, rule_changes = [], []
        for key, value in changes:
            if key == SEEN_KEY:
                for event_id, at in value:
                    state.seen.is_duplicate(event_id, at)
            elif key == SEEN_WATERMARK_KEY:
                state.seen.advance(value)
            elif key.startswith(RULES_PREFIX):
                rule_changes.append((key[len(RULES_PREFIX):], value))
            else:
                journey_changes.append((key, value))
        state.restored_offset = state.last_offset = -1 if offset is None else offset
        state.replay_until, state.replay = intent, []
        state.processor = JourneyProcessor.restore(journey_changes, policy, track_changes=True)
        state.engine = RuleEngine.restore(rule_changes, rules, policy, track_changes=True)
        # Open updates held back by the previous owner were never published: publish them all.
        state.open_updates = OpenUpdates(settings.open_update_interval_ms / 1000)
        state.open_updates.hold_all(state.processor.sessions.snapshot(), state.processor.visits.snapshot(), now_ms())
        # The first flush writes the whole state: the log before it is then never read again.
        state.snapshots = SnapshotSchedule(settings.state_snapshot_interval_ms / 1000, settings.state_snapshot_min_bytes)

    @app.on_partitions_revoked.connect
    async def forget_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
        if any(tp.topic == accepted.get_topic_name() for tp in revoked):
            state.processor = state.engine = state.open_updates = None

    async def publish(out: BatchOutput, intent_offset: int | None = None) -> None:
        """Outputs first, then the state that reflects them (module docstring). Returns once the
        outputs are sent and the state changes drained; their acknowledgements and the changelog
        group are awaited by `acknowledge`, in the background, while the next batch is processed."""
        await state.acknowledged()  # the previous batch's outputs and state are acknowledged
        emitted_at = now_ms()
        started = time.perf_counter()
        batch, fired = out.journey, out.rules
        if intent_offset is not None:  # stored before any output of the batch
            await (await send(changelog, intent_record(intent_offset), 0))
        # Triggers first: they are what someone is waiting for.
        triggered = [(trigger, await send(rule_topics[trigger.rule],
                                          codec.encode_output("trigger", trigger.to_record(emitted_at)),
                                          partition_for(trigger_key(trigger), n)))
                     for trigger in fired.triggers]
        # Then the events for the sink (timestamped with the earliest ingress append, so the sink
        # can report freshness from it), and a turn of the loop, in which the producer sends them
        # while the session and visit updates are encoded.
        sends = [await send(resolved_topic, value, partition, appended_s)
                 for partition, value, appended_s in resolved_values(out)]
        await asyncio.sleep(0)
        sessions, visits = state.open_updates.pass_through(
            session_updates(batch, emitted_at), visit_updates(batch, emitted_at), time.monotonic())
        sends += await send_updates(sessions, visits)
        for topic, name, records, key in (
                (identity_topic, "person_merge", [m.to_dict() for m in batch.merges], "from_person"),
                (decisions_topic, "trigger_decision", trigger_decisions(fired, emitted_at), "person_id")):
            sends += await send_batches(topic, name, records, key)
        # The state as of this batch, drained before the next batch changes it.
        changes = state.processor.drain_changes() + seen_items(out.seen)
        changes += [(RULES_PREFIX + key, value) for key, value in state.engine.drain_changes()]
        snapshot = state.snapshots.due(time.monotonic())
        group = changelog_group(state.last_offset, whole_state() if snapshot else changes, snapshot)
        state.snapshots.wrote(group, snapshot, time.monotonic())
        metrics.STEP_SECONDS.labels("journey", "outputs").inc(time.perf_counter() - started)
        metrics.record_journey(batch)
        metrics.record_rules(fired)
        metrics.record_state(state.processor, state.engine)
        # `acknowledge` keeps the ingress appends of the triggers' causes, not the batch: its events
        # are garbage once this returns (agents/app.py, collector_paused).
        appended = cause_appends(out, [trigger for trigger, _ in triggered])
        state.acknowledging = asyncio.ensure_future(acknowledge(appended, triggered, sends, group, snapshot))
        state.acknowledging.add_done_callback(stop_if_failed)

    async def acknowledge(appended: dict[str, float], triggered: list, sends: list, group: list[bytes],
                          snapshot: bool) -> None:
        """A batch's outputs acknowledged, then its changelog group written and acknowledged."""
        started = time.perf_counter()
        await asyncio.gather(*sends, *(sent for _, sent in triggered))
        observe_trigger_latency(appended, [trigger for trigger, _ in triggered])
        await asyncio.gather(*[await send(changelog, value, 0) for value in group])
        if snapshot:
            metrics.STATE_SNAPSHOTS.labels("journey").inc()
        metrics.STEP_SECONDS.labels("journey", "changelog").inc(time.perf_counter() - started)

    def stop_if_failed(acknowledging: asyncio.Future) -> None:
        """A batch whose outputs or changelog group failed stops the worker, as a failure inside the
        batch did when it was awaited there: the state in memory is ahead of the changelog, and a
        restart processes the unfinished batch again from its intent."""
        if not acknowledging.cancelled() and acknowledging.exception() is not None:
            log.error("journey: publishing a batch failed (%r); stopping the worker", acknowledging.exception())
            os.kill(os.getpid(), signal.SIGTERM)

    def seen_items(pairs: list[list]) -> list[tuple[str, list[list]]]:
        """The ids seen go in pieces: a changelog item is one record, and records have a size limit."""
        return [(SEEN_KEY, pairs[i:i + SEEN_PER_ITEM]) for i in range(0, len(pairs), SEEN_PER_ITEM)]

    def whole_state() -> list[tuple[str, Any]]:
        """A snapshot's changes: everything `restore()` needs, in the order it applies them."""
        changes = list(state.processor.snapshot().items())
        changes += seen_items(state.seen.memory()) + [(SEEN_WATERMARK_KEY, state.seen.watermark)]
        return changes + [(RULES_PREFIX + key, value) for key, value in state.engine.snapshot().items()]

    async def send_batches(topic: faust.TopicT, name: str, records: list[dict[str, Any]], key: str) -> list:
        return [await send(topic, codec.encode_outputs(name, chunk), partition)
                for partition, chunk in by_partition(records, key, topic.partitions, per_record)]

    async def send_updates(sessions: list[dict[str, Any]], visits: list[dict[str, Any]]) -> list:
        return (await send_batches(sessions_topic, "session_update", sessions, "person_id")
                + await send_batches(visits_topic, "visit_update", visits, "person_id"))

    def resolved_values(out: BatchOutput):
        """(partition, record value, earliest ingress append) per partition: the batch's accepted
        records as envelopes, spread over the partitions by offset."""
        person_of = {id(event): person for person, event in out.journey.resolved}
        late = {id(late_event.event) for late_event in out.journey.late}
        chunks: dict[int, list[AcceptedRecord]] = {}
        sizes: dict[int, int] = {}
        for record in out.records:
            partition = record.offset % n
            chunk = chunks.setdefault(partition, [])
            if chunk and sizes[partition] + len(record.value) > RESOLVED_RECORD_BYTES:
                yield envelope_record(partition, chunk, person_of, late)
                chunk = chunks[partition] = []
                sizes[partition] = 0
            chunk.append(record)
            sizes[partition] = sizes.get(partition, 0) + len(record.value)
        for partition, chunk in chunks.items():
            yield envelope_record(partition, chunk, person_of, late)

    def envelope_record(partition: int, records: list[AcceptedRecord], person_of: dict, late: set):
        envelopes = [resolved_envelope(r.value, r.offset, r.events, person_of, late) for r in records]
        return partition, codec.encode_outputs("resolved_events", envelopes), min(r.appended_s for r in records)

    def cause_appends(out: BatchOutput, triggers: list) -> dict[str, float]:
        """Event id -> ingress append time, for the events that caused `triggers`."""
        if not triggers or not out.records:
            return {}
        causes = {cause for trigger in triggers for cause in trigger.cause_event_ids}
        return {event["event_id"]: record.appended_s for record in out.records for event in record.events
                if event["event_id"] in causes}

    def observe_trigger_latency(appended: dict[str, float], triggers: list) -> None:
        if not appended:
            return
        now_s = time.time()
        for trigger in triggers:
            appends = [appended[c] for c in trigger.cause_event_ids if c in appended]
            if appends:
                metrics.TRIGGER_LATENCY.labels(trigger.rule).observe(max(0.0, now_s - max(appends)))

    @app.agent(accepted, name="journey")
    async def journey(stream: faust.StreamT) -> None:
        async for records in stream.take_events(settings.agent_batch_records, within=settings.agent_batch_wait_ms / 1000):
            async with state.lock:
                with collector_paused():  # a batch's objects are garbage only once it is done
                    await take(records)

    async def take(records: list) -> None:
        if state.processor is None:
            await state.acknowledged()  # what the previous owner of this state still had in flight
            await restore()
        metrics.BATCH_RECORDS.labels("journey").observe(len(records))
        started = time.perf_counter()
        batch: list[AcceptedRecord] = []
        for record in records:
            message = record.message
            if message.offset <= state.restored_offset:
                continue  # reflected in the restored state, and its outputs were published
            decoded = AcceptedRecord(message.offset, message.timestamp or time.time(), message.value,
                                     codec.decode_accepted(message.value))
            if state.replay_until is not None:
                state.replay.append(decoded)
                if message.offset == state.replay_until:  # the interrupted batch is whole again
                    await run_batch(state.replay, started)
                    state.replay_until, state.replay = None, []
                continue
            batch.append(decoded)
        if batch:
            await run_batch(batch, started)

    async def run_batch(records: list[AcceptedRecord], started: float) -> None:
        last_offset = records[-1].offset
        state.last_offset = last_offset
        fresh = [e for record in records for e in record.events
                 if not state.seen.is_duplicate(e["event_id"], e["occurred_at"])]
        metrics.JOURNEY_DUPLICATES.inc(sum(len(record.events) for record in records) - len(fresh))
        # Arrival order inside a batch means little (five ingress topics, many producers, and
        # records grouped by type); event-time order keeps a backlog from looking late.
        fresh.sort(key=occurred_at)
        state.last_event_wall_ms = now_ms()
        decoded = time.perf_counter()
        batch = state.processor.process(fresh)
        processed = time.perf_counter()
        fired = state.engine.on_batch(batch.resolved, batch)
        metrics.STEP_SECONDS.labels("journey", "decode").inc(decoded - started)
        metrics.STEP_SECONDS.labels("journey", "process").inc(processed - decoded)
        metrics.STEP_SECONDS.labels("journey", "rules").inc(time.perf_counter() - processed)
        await publish(BatchOutput(batch, fired, records, [[e["event_id"], e["occurred_at"]] for e in fresh]),
                      last_offset)

    @app.timer(interval=max(settings.open_update_interval_ms, 100) / 1000)
    async def release_open_updates() -> None:
        """Held open updates go out within the interval even when no batch comes to take them."""
        async with state.lock:
            held = state.open_updates
            if held is None or not (held.sessions or held.visits) or not held.due(time.monotonic()):
                return
            await state.acknowledged()  # after the batch they come from: its intent goes first
            await asyncio.gather(*await send_updates(*held.release(time.monotonic())))

    @app.timer(interval=settings.journey_idle_advance_ms / 4000)
    async def close_idle_sessions() -> None:
        async with state.lock:
            processor = state.processor
            idle_ms = now_ms() - state.last_event_wall_ms
            if processor is None or processor.watermark_ms is None or idle_ms < settings.journey_idle_advance_ms:
                return
            state.last_event_wall_ms = now_ms()
            watermark = processor.watermark_ms + idle_ms
            batch = processor.advance(watermark)
            fired = state.engine.on_batch([], batch)
            fired.extend(state.engine.advance(watermark))
            await publish(BatchOutput(batch, fired))
