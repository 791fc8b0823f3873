"""The journey agent: accepted events -> identity, sessions, visits (pipeline.journey) -> topics.

A single writer: `o2o.accepted` has one partition, because identity linking is global (README,
"Identity and sessions"). Per batch of records: write an *intent* (the batch's last offset) to the
changelog; decode; drop events whose id it has already seen (a crash upstream re-sends accepted
events); `JourneyProcessor.process`; publish the session and visit updates and the person merges
as batch records partitioned by person and wait for the acks; then write the state changes (and
the ids seen) as one changelog group carrying the last input offset.

A worker that takes the partition over restores the state from the complete groups, skips input at
or below their offset, and, when an intent was left unfinished, processes exactly that batch again
before anything else: the processor is deterministic, so it republishes the same versions and
leaves none behind that an uninterrupted run would not have. So a restart (kill -9 included) or a
rebalance neither loses nor double-counts: the sessions it publishes are those of an uninterrupted
run.

Each batch is processed in event-time order: arrival order inside a batch means little (five
ingress topics, many producers, records grouped by type), and a backlog read in type order would
otherwise push the watermark ahead and make on-time events look late.

A stream that goes quiet still closes sessions: after `journey_idle_advance_ms` without events the
watermark moves forward by the wall time that passed.
"""

from __future__ import annotations

import asyncio
import time
from operator import itemgetter
from typing import Any

import faust
from faust.types import TP

from agents import metrics
from agents.changelog import changelog_group, intent_record, read_partition, replay_changelog
from agents.ingest import raw_topic
from pipeline.config import Settings
from pipeline.dedup import Deduplicator
from pipeline.journey import JourneyBatch, JourneyProcessor
from pipeline.serde import EventCodec, registry_from_settings
from pipeline.topics import ACCEPTED, IDENTITY, JOURNEY_CHANGELOG, JOURNEY_PARTITIONS, SESSIONS, VISITS, partition_for


occurred_at = itemgetter("occurred_at")
SEEN_KEY = "seen"  # changelog key of the event ids a batch sessionised (for the journey's dedup)


def now_ms() -> int:
    return int(time.time() * 1000)


def session_updates(batch: JourneyBatch, emitted_at: int) -> list[dict[str, Any]]:
    done = batch.records()  # serialised once per batch, shared with the changelog
    records = [{**r, "state": "open", "absorbed_into": None, "emitted_at": emitted_at}
               for r in done["sessions_updated"]]
    records += [{**r, "state": "closed", "absorbed_into": None, "emitted_at": emitted_at}
                for r in done["sessions_closed"]]
    persons = {r["session_id"]: r["person_id"] for r in records}
    records += [absorbed_record(absorbed, into, persons.get(into, ""), emitted_at)
                for absorbed, into in batch.sessions_absorbed]
    return records


def absorbed_record(absorbed: str, into: str, person: str, emitted_at: int) -> dict[str, Any]:
    """A tombstone-like update: the session `absorbed` is now part of `into`."""
    return {"state": "absorbed", "session_id": absorbed, "person_id": person, "absorbed_into": into,
            "start": 0, "end": 0, "event_count": 0, "counts": {}, "online_channels": [], "offline_channels": [],
            "stores": [], "revenue_cents": 0, "has_complaint": False, "has_share": False,
            "online_to_offline": False, "event_ids": [], "emitted_at": emitted_at}


def visit_updates(batch: JourneyBatch, emitted_at: int) -> list[dict[str, Any]]:
    done = batch.records()
    records = [{**r, "state": "open", "absorbed_into": None, "emitted_at": emitted_at}
               for r in done["visits_updated"]]
    records += [{**r, "state": "closed", "absorbed_into": None, "emitted_at": emitted_at}
                for r in done["visits_closed"]]
    known = {r["visit_id"]: r for r in records}
    for absorbed, into in batch.visits_absorbed:
        survivor = known.get(into, {})
        records.append({"state": "absorbed", "visit_id": absorbed, "person_id": survivor.get("person_id", ""),
                        "store_id": survivor.get("store_id", ""), "absorbed_into": into, "start": 0, "end": 0,
                        "dwell_s": 0, "class": "passerby", "max_rssi": None, "connected": False,
                        "ended_by_disassociate": False, "emitted_at": emitted_at})
    return records


def by_person_partition(records: list[dict[str, Any]], person_field: str, partitions: int, per_record: int):
    """(partition, records chunk) pairs: records grouped by their person's partition."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(partition_for(record[person_field], partitions), []).append(record)
    for partition, group in groups.items():
        for start in range(0, len(group), per_record):
            yield partition, group[start:start + per_record]


class JourneyState:
    """The processor of the one partition this worker may own, and what is needed to resume it."""

    def __init__(self) -> None:
        self.processor: JourneyProcessor | None = None
        self.seen: Deduplicator | None = None
        self.restored_offset = -1
        self.last_offset = -1
        self.replay_until: int | None = None  # an interrupted batch to process again, exactly
        self.replay: list[dict[str, Any]] = []
        self.last_event_wall_ms = now_ms()
        self.lock = asyncio.Lock()


def register(app: faust.App, settings: Settings) -> None:
    n = settings.topic_partitions
    per_record = settings.output_batch_events
    accepted = raw_topic(app, settings.topic(ACCEPTED), JOURNEY_PARTITIONS)
    sessions_topic = raw_topic(app, settings.topic(SESSIONS), n)
    visits_topic = raw_topic(app, settings.topic(VISITS), n)
    identity_topic = raw_topic(app, settings.topic(IDENTITY), n)
    changelog = raw_topic(app, settings.topic(JOURNEY_CHANGELOG), JOURNEY_PARTITIONS)
    codec = EventCodec(registry_from_settings(settings))
    policy = settings.journey_policy()
    state = JourneyState()

    async def restore() -> None:
        values = await asyncio.get_running_loop().run_in_executor(
            None, read_partition, settings, changelog.get_topic_name(), 0)
        changes, offset, intent = replay_changelog(values)
        metrics.STATE_RESTORES.labels("journey").inc(len(values))
        state.seen = settings.new_deduplicator()
        for key, ids in changes:
            if key == SEEN_KEY:
                for event_id, at in ids:
                    state.seen.is_duplicate(event_id, at)
        state.restored_offset = state.last_offset = -1 if offset is None else offset
        state.replay_until, state.replay = intent, []
        state.processor = JourneyProcessor.restore([c for c in changes if c[0] != SEEN_KEY], policy,
                                                   track_changes=True)

    @app.on_partitions_revoked.connect
    async def forget_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
        if any(tp.topic == accepted.get_topic_name() for tp in revoked):
            state.processor = None

    async def publish(batch: JourneyBatch, seen: list[list] = ()) -> None:
        """Outputs first, acknowledged; then the state that reflects them (module docstring)."""
        emitted_at = now_ms()
        started = time.perf_counter()
        outputs = []
        for partition, chunk in by_person_partition(session_updates(batch, emitted_at), "person_id", n, per_record):
            outputs.append(await sessions_topic.send(value=codec.encode_outputs("session_update", chunk),
                                                     partition=partition))
        visits = visit_updates(batch, emitted_at)
        for partition, chunk in by_person_partition(visits, "person_id", n, per_record):
            outputs.append(await visits_topic.send(value=codec.encode_outputs("visit_update", chunk),
                                                   partition=partition))
        merges = [m.to_dict() for m in batch.merges]
        for partition, chunk in by_person_partition(merges, "from_person", n, per_record):
            outputs.append(await identity_topic.send(value=codec.encode_outputs("person_merge", chunk),
                                                     partition=partition))
        await asyncio.gather(*outputs)
        outputs_done = time.perf_counter()
        group = changelog_group(state.last_offset, state.processor.drain_changes() + [(SEEN_KEY, seen)])
        await asyncio.gather(*[await changelog.send(value=value, partition=0) for value in group])
        metrics.STEP_SECONDS.labels("journey", "outputs").inc(outputs_done - started)
        metrics.STEP_SECONDS.labels("journey", "changelog").inc(time.perf_counter() - outputs_done)
        metrics.record_journey(batch)

    @app.agent(accepted, name="journey")
    async def journey(stream: faust.StreamT) -> None:
        async for records in stream.take_events(settings.agent_batch_records, within=settings.agent_batch_wait_ms / 1000):
            async with state.lock:
                if state.processor is None:
                    await restore()
                metrics.BATCH_RECORDS.labels("journey").observe(len(records))
                started = time.perf_counter()
                events: list[dict[str, Any]] = []
                for record in records:
                    message = record.message
                    if message.offset <= state.restored_offset:
                        continue  # reflected in the restored state, and its outputs were published
                    decoded = codec.decode(message.value)
                    if state.replay_until is not None:
                        state.replay.extend(decoded)
                        if message.offset == state.replay_until:  # the interrupted batch is whole again
                            await run_batch(state.replay, message.offset, started)
                            state.replay_until, state.replay = None, []
                        continue
                    events.extend(decoded)
                    state.last_offset = message.offset
                if events:
                    await run_batch(events, state.last_offset, started)

    async def run_batch(events: list[dict[str, Any]], last_offset: int, started: float) -> None:
        await (await changelog.send(value=intent_record(last_offset), partition=0))
        state.last_offset = last_offset
        fresh = [e for e in events if not state.seen.is_duplicate(e["event_id"], e["occurred_at"])]
        metrics.JOURNEY_DUPLICATES.inc(len(events) - len(fresh))
        # Arrival order inside a batch means little (five ingress topics, many producers, and
        # records grouped by type); event-time order keeps a backlog from looking late.
        fresh.sort(key=occurred_at)
        state.last_event_wall_ms = now_ms()
        decoded = time.perf_counter()
        batch = state.processor.process(fresh)
        metrics.STEP_SECONDS.labels("journey", "decode").inc(decoded - started)
        metrics.STEP_SECONDS.labels("journey", "process").inc(time.perf_counter() - decoded)
        await publish(batch, [[e["event_id"], e["occurred_at"]] for e in fresh])

    @app.timer(interval=settings.journey_idle_advance_ms / 4000)
    async def close_idle_sessions() -> None:
        async with state.lock:
            processor = state.processor
            idle_ms = now_ms() - state.last_event_wall_ms
            if processor is None or processor.watermark_ms is None or idle_ms < settings.journey_idle_advance_ms:
                return
            state.last_event_wall_ms = now_ms()
            await publish(processor.advance(processor.watermark_ms + idle_ms))
