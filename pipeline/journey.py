"""JourneyProcessor: identity, sessions and store visits for batches of validated events.

Give it the events of a batch in arrival order; it returns what the batch changed: identity
merges and conflicts, session upserts / closures / absorptions, visit upserts / closures /
absorptions, and the late events (kept, never dropped: the caller stores them).

Time: the *watermark* is the maximum event time seen by this processor (one processor per
partition: Kafka Streams' stream time, per task). An event is late when
``occurred_at < watermark - allowed_lateness``: the *cutoff*. Late events still link identities
but no longer change sessions or visits. Sessions and visits close once the cutoff passes the last
time an accepted event could reach them, so a closed version is final. A global (per-partition)
watermark rather than one per person: closing must progress for persons who never come back, and
a device uploading an hour late should count as late however quiet it was before.

Routing for several workers (one paragraph for the stream agents):
identity linking is global, so stage 1 runs `IdentityGraph.resolve` as a single writer (one
partition, or a dedicated worker owning all identity state; its changelog is keyed by identifier)
and re-keys each event by its person id onto a topic partitioned by person id. Stage 2 runs one
JourneyProcessor per partition in `process_resolved` mode (no identity of its own), so all of a
person's sessions and visits live on one partition. A merge from -> to is published by stage 1
as a record keyed by `from` *after* every event it re-keyed to `from` (same producer, so the order
holds); the worker owning `from` calls `export_person(from)` and forwards the result keyed by `to`;
the worker owning `to` calls `import_person(to, exported)`. Single-process runs (dry-run, tests,
the benchmark) do all of this in `process`.

State: `snapshot()` / `restore()` give and take plain data; `drain_changes()` returns the
(key, value) pairs changed since the last call (value None = deleted), once per flush, for a
compacted changelog: "wm", "i:<identifier>", "s:<session_id>", "v:<visit_id>".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from pipeline.identity import IdentityConflict, IdentityGraph, PersonMerge
from pipeline.policy import JourneyPolicy, VisitPolicy
from pipeline.sessions import NEVER, Session, SessionTracker
from pipeline.visits import Visit, VisitTracker


@dataclass(frozen=True, slots=True)
class LateEvent:
    """An event older than the cutoff: not in any session or visit; store it as late."""

    person_id: str
    event: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"event_id": self.event["event_id"], "person_id": self.person_id,
                "event_type": self.event["event_type"], "occurred_at": self.event["occurred_at"]}


@dataclass(slots=True)
class JourneyBatch:
    """What one call changed. Sessions and visits are live objects: serialise them before the next call."""

    watermark_ms: int | None
    events: int = 0
    resolved: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (person at arrival, event)
    late: list[LateEvent] = field(default_factory=list)
    merges: list[PersonMerge] = field(default_factory=list)
    conflicts: list[IdentityConflict] = field(default_factory=list)
    sessions_updated: list[Session] = field(default_factory=list)
    sessions_closed: list[Session] = field(default_factory=list)
    sessions_absorbed: list[tuple[str, str]] = field(default_factory=list)   # (absorbed id, into id)
    visits_updated: list[Visit] = field(default_factory=list)
    visits_closed: list[Visit] = field(default_factory=list)
    visits_absorbed: list[tuple[str, str]] = field(default_factory=list)
    visit_policy: VisitPolicy = VisitPolicy()
    _records: dict[str, list[dict[str, Any]]] | None = None

    def records(self) -> dict[str, list[dict[str, Any]]]:
        """`to_record()` of the updated and closed sessions and visits, computed once per batch.

        Keys "sessions_updated", "sessions_closed", "visits_updated", "visits_closed", each aligned
        with the list of that name. Sinks and `drain_changes()` share these: a record is the
        expensive part of both, so serialise through here rather than calling to_record() again.
        Call it before the next batch: the objects are live."""
        if self._records is None:
            policy = self.visit_policy
            self._records = {
                "sessions_updated": [s.to_record() for s in self.sessions_updated],
                "sessions_closed": [s.to_record() for s in self.sessions_closed],
                "visits_updated": [v.to_record(policy) for v in self.visits_updated],
                "visits_closed": [v.to_record(policy) for v in self.visits_closed],
            }
        return self._records

    def to_dict(self, visit_policy: VisitPolicy) -> dict[str, Any]:
        return {
            "watermark": self.watermark_ms, "events": self.events,
            "late": [late.to_dict() for late in self.late],
            "merges": [merge.to_dict() for merge in self.merges],
            "conflicts": [conflict.to_dict() for conflict in self.conflicts],
            "sessions_updated": [s.to_dict() for s in self.sessions_updated],
            "sessions_closed": [s.to_dict() for s in self.sessions_closed],
            "sessions_absorbed": [{"absorbed": a, "into": b} for a, b in self.sessions_absorbed],
            "visits_updated": [v.to_dict(visit_policy) for v in self.visits_updated],
            "visits_closed": [v.to_dict(visit_policy) for v in self.visits_closed],
            "visits_absorbed": [{"absorbed": a, "into": b} for a, b in self.visits_absorbed],
        }


class JourneyProcessor:
    """Identity + sessions + visits for one partition's events. Pure, deterministic, no I/O."""

    def __init__(self, policy: JourneyPolicy = JourneyPolicy(), identity: IdentityGraph | None = None,
                 track_changes: bool = False) -> None:
        """track_changes: remember what changed for `drain_changes()` (a changelog); off, nothing is
        kept beyond the returned batches, so a caller that never drains does not grow memory."""
        self.policy = policy
        self.identity = identity if identity is not None else IdentityGraph(track_changes)
        self.track_changes = track_changes
        self.sessions = SessionTracker(policy.sessions)
        self.visits = VisitTracker(policy.visits)
        self.watermark_ms: int | None = None
        self.stats = {"events": 0, "late": 0, "merges": 0, "conflicts": 0}
        self._unflushed: list[JourneyBatch] = []  # batches since drain_changes()
        self._merges: list[PersonMerge] = []

    @property
    def cutoff_ms(self) -> int:
        """Events older than this are late; nothing older can change any more."""
        if self.watermark_ms is None:
            return -NEVER
        return self.watermark_ms - self.policy.allowed_lateness_ms

    # --- the hot path --------------------------------------------------------------------------

    def process(self, events: Iterable[dict[str, Any]]) -> JourneyBatch:
        """Resolve identity, then sessionise and build visits for one batch in arrival order.

        Events are normalised events (`pipeline.events`: every common key present, None when
        absent), as validation produces them; the hot path reads keys without defaults."""
        # Methods called on their objects and event fields typed as read: compiled (pipeline/compiled.py),
        # these become direct native calls and unboxed ints; methods bound to locals would not.
        identity, sessions, visits = self.identity, self.sessions, self.visits
        lateness = self.policy.allowed_lateness_ms
        watermark = self.watermark_ms if self.watermark_ms is not None else -NEVER
        cutoff = watermark - lateness
        late: list[LateEvent] = []
        resolved: list[tuple[str, dict[str, Any]]] = []
        for event in events:
            person = identity.resolve(event)
            resolved.append((person, event))
            if identity.pending_merges:
                self._rehome(identity.pending_merges)
            t: int = event["occurred_at"]
            if t > watermark:
                watermark = t
                cutoff = t - lateness
            elif t < cutoff:
                late.append(LateEvent(person, event))
                continue
            event_id: str = event["event_id"]
            kind: str = event["event_type"]
            store: str | None = event["store_id"]
            sessions.add_read(person, event, t, event_id, kind, store)
            if store and kind == "wifi_checkin":
                visits.add_read(person, store, event, t, event_id)
        return self._finish_batch(watermark, len(resolved), late, resolved)

    def process_resolved(self, pairs: Iterable[tuple[str, dict[str, Any]]]) -> JourneyBatch:
        """Like `process` for (person_id, event) pairs already resolved by an identity stage."""
        sessions, visits = self.sessions, self.visits
        lateness = self.policy.allowed_lateness_ms
        watermark = self.watermark_ms if self.watermark_ms is not None else -NEVER
        cutoff = watermark - lateness
        late: list[LateEvent] = []
        count = 0
        for person, event in pairs:
            count += 1
            t: int = event["occurred_at"]
            if t > watermark:
                watermark = t
                cutoff = t - lateness
            elif t < cutoff:
                late.append(LateEvent(person, event))
                continue
            event_id: str = event["event_id"]
            kind: str = event["event_type"]
            store: str | None = event["store_id"]
            sessions.add_read(person, event, t, event_id, kind, store)
            if store and kind == "wifi_checkin":
                visits.add_read(person, store, event, t, event_id)
        return self._finish_batch(watermark, count, late)

    def _rehome(self, merges: list[PersonMerge]) -> None:
        """An identity merge: the absorbed person's open sessions and visits move to the survivor."""
        for merge in merges:
            self.import_person(merge.to_person, self.export_person(merge.from_person))
            self._merges.append(merge)
        merges.clear()

    # --- closing ---------------------------------------------------------------------------------

    def advance(self, watermark_ms: int) -> JourneyBatch:
        """Move the watermark forward (e.g. from the clock on an idle partition) and close what timed out."""
        current = self.watermark_ms if self.watermark_ms is not None else watermark_ms
        return self._finish_batch(max(current, watermark_ms), 0, [])

    def close_all(self) -> JourneyBatch:
        """Close every open session and visit (end of a finite input, e.g. a dry run)."""
        self.sessions.close_all()
        self.visits.close_all()
        return self._finish_batch(self.watermark_ms, 0, [])

    def _finish_batch(self, watermark: int | None, count: int, late: list[LateEvent],
                      resolved: list[tuple[str, dict[str, Any]]] | None = None) -> JourneyBatch:
        if watermark is not None and watermark > -NEVER:
            self.watermark_ms = watermark
            cutoff = self.cutoff_ms
            self.sessions.close_before(cutoff)
            self.visits.close_before(cutoff)
        batch = JourneyBatch(self.watermark_ms, count, resolved if resolved is not None else [], late,
                             self._merges, self.identity.conflicts, visit_policy=self.policy.visits)
        self._merges, self.identity.conflicts = [], []
        batch.sessions_updated, batch.sessions_closed, batch.sessions_absorbed = self.sessions.drain()
        batch.visits_updated, batch.visits_closed, batch.visits_absorbed = self.visits.drain()
        if self.track_changes:
            self._unflushed.append(batch)  # folded into changelog records by drain_changes()
        stats = self.stats
        stats["events"] += count
        stats["late"] += len(late)
        stats["merges"] += len(batch.merges)
        stats["conflicts"] += len(batch.conflicts)
        return batch

    # --- moving a person between partitions ----------------------------------------------------

    def export_person(self, person_id: str) -> dict[str, list[Any]]:
        """Remove a person's open sessions and visits (live objects) for `import_person` elsewhere."""
        return {"sessions": self.sessions.take_person(person_id), "visits": self.visits.take_person(person_id)}

    def import_person(self, person_id: str, exported: dict[str, list[Any]]) -> None:
        """Adopt exported sessions and visits under `person_id`; they merge where they touch."""
        sessions = [s if isinstance(s, Session) else Session.from_record(s) for s in exported["sessions"]]
        visits = [v if isinstance(v, Visit) else Visit.from_record(v) for v in exported["visits"]]
        self.sessions.adopt(person_id, sessions)
        self.visits.adopt(person_id, visits)

    # --- state -----------------------------------------------------------------------------------

    def drain_changes(self) -> list[tuple[str, Any]]:
        """(key, plain value or None) changed since the last call: one changelog flush.

        Batches are remembered as they pass and folded here (last write wins), so a caller that
        flushes every N batches serialises each session once per flush, not once per batch. A
        batch's `records()` are reused: a session not updated after that batch is unchanged since."""
        if not self.track_changes:
            raise RuntimeError("drain_changes() needs JourneyProcessor(track_changes=True); "
                               "use snapshot() for a one-off copy of the state")
        sessions: dict[str, Any] = {}
        visits: dict[str, Any] = {}
        for batch in self._unflushed:
            # Removals first: an id removed and re-created in one batch (a visit split) is live.
            sessions.update((s.session_id, None) for s in batch.sessions_closed)
            sessions.update((absorbed, None) for absorbed, _ in batch.sessions_absorbed)
            visits.update((v.visit_id, None) for v in batch.visits_closed)
            visits.update((absorbed, None) for absorbed, _ in batch.visits_absorbed)
            # Where the latest version is; serialised below only for the last batch that touched it.
            sessions.update((s.session_id, (batch, i)) for i, s in enumerate(batch.sessions_updated))
            visits.update((v.visit_id, (batch, i)) for i, v in enumerate(batch.visits_updated))
        self._unflushed = []
        changes: list[tuple[str, Any]] = [("wm", self.watermark_ms)]
        changes += [("i:" + key, value) for key, value in self.identity.drain_changes()]
        changes += [("s:" + key, _updated_record(where, "sessions_updated")) for key, where in sessions.items()]
        changes += [("v:" + key, _updated_record(where, "visits_updated")) for key, where in visits.items()]
        return changes

    def snapshot(self) -> dict[str, Any]:
        """All state as {changelog key: plain value}; JSON-safe."""
        state: dict[str, Any] = {"wm": self.watermark_ms}
        state.update(("i:" + key, value) for key, value in self.identity.snapshot().items())
        state.update(("s:" + record["session_id"], record) for record in self.sessions.snapshot())
        state.update(("v:" + record["visit_id"], record) for record in self.visits.snapshot())
        return state

    @classmethod
    def restore(cls, state: dict[str, Any] | Iterable[tuple[str, Any]], policy: JourneyPolicy = JourneyPolicy(),
                track_changes: bool = False) -> JourneyProcessor:
        """Rebuild from `snapshot()` or from changelog pairs in order (last value wins, None deletes)."""
        latest = dict(state.items() if isinstance(state, dict) else state)
        identity = IdentityGraph.restore((k[2:], v) for k, v in latest.items() if k.startswith("i:") and v)
        identity.track_changes = track_changes
        processor = cls(policy, identity, track_changes)
        processor.watermark_ms = latest.get("wm")
        processor.sessions.restore(v for k, v in latest.items() if k.startswith("s:") and v is not None)
        processor.visits.restore(v for k, v in latest.items() if k.startswith("v:") and v is not None)
        return processor

    # --- reading -----------------------------------------------------------------------------------

    def person_dict(self, person_id: str) -> dict[str, Any]:
        return self.identity.person_dict(person_id)


def _updated_record(where: tuple[JourneyBatch, int] | None, kind: str) -> dict[str, Any] | None:
    """The record of item `index` of `batch.<kind>`: the batch's own if a sink already made them."""
    if where is None:
        return None
    batch, index = where
    if batch._records is not None:
        return batch._records[kind][index]
    item = getattr(batch, kind)[index]
    return item.to_record() if isinstance(item, Session) else item.to_record(batch.visit_policy)
