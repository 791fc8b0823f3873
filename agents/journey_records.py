"""What the journey agent publishes, as plain records for the Avro schemas in `schemas/`.

One function per output: session and visit updates (`o2o.sessions`, `o2o.visits`), trigger
decisions (`o2o.trigger-log`), resolved-event envelopes (`o2o.resolved`), and grouping by the
partition of a person. No I/O.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from pipeline.journey import JourneyBatch
from pipeline.rules import RuleOutput
from pipeline.rules.trigger import Trigger
from pipeline.topics import partition_for


def session_updates(batch: JourneyBatch, emitted_at: int) -> list[dict[str, Any]]:
    done = batch.records()  # serialised once per batch, shared with the changelog
    records = [{**r, "state": "open", "absorbed_into": None, "emitted_at": emitted_at}
               for r in done["sessions_updated"]]
    records += [{**r, "state": "closed", "absorbed_into": None, "emitted_at": emitted_at}
                for r in done["sessions_closed"]]
    persons = {r["session_id"]: r["person_id"] for r in records}
    records += [absorbed_session(absorbed, into, persons.get(into, ""), emitted_at)
                for absorbed, into in batch.sessions_absorbed]
    return records


def absorbed_session(absorbed: str, into: str, person: str, emitted_at: int) -> dict[str, Any]:
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


class OpenUpdates:
    """Open session and visit updates held back and published at most once per `interval_s`, the
    latest version of each id only (as Kafka Streams' record cache coalesces a KTable's updates).

    A closure or absorption goes out at once and replaces what is held for its id, so a held open
    version can never be published after it. Nothing here is in the changelog: a worker that
    restores the state republishes every open session and visit once (`hold_all`)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.sessions: dict[str, dict[str, Any]] = {}
        self.visits: dict[str, dict[str, Any]] = {}
        self.released_at = float("-inf")  # time.monotonic() of the last release

    def pass_through(self, sessions: list[dict[str, Any]], visits: list[dict[str, Any]],
                     now_s: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The session and visit records to publish now: closures and absorptions, and, when the
        interval has passed since the last release, every held open version."""
        sessions, visits = _hold(self.sessions, sessions, "session_id"), _hold(self.visits, visits, "visit_id")
        if self.due(now_s):
            held_sessions, held_visits = self.release(now_s)
            sessions += held_sessions
            visits += held_visits
        return sessions, visits

    def due(self, now_s: float) -> bool:
        return now_s - self.released_at >= self.interval_s

    def release(self, now_s: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        sessions, visits = list(self.sessions.values()), list(self.visits.values())
        self.sessions.clear()
        self.visits.clear()
        self.released_at = now_s
        return sessions, visits

    def hold_all(self, sessions: list[dict[str, Any]], visits: list[dict[str, Any]], emitted_at: int) -> None:
        """Hold every open session and visit (records as `snapshot()` gives them) for the next release."""
        self.sessions.update((r["session_id"], {**r, **OPEN, "emitted_at": emitted_at}) for r in sessions)
        self.visits.update((r["visit_id"], {**r, **OPEN, "emitted_at": emitted_at}) for r in visits)


OPEN = {"state": "open", "absorbed_into": None}


def _hold(held: dict[str, dict[str, Any]], records: list[dict[str, Any]], id_field: str) -> list[dict[str, Any]]:
    now = []
    for record in records:
        if record["state"] == "open":
            held[record[id_field]] = record
        else:
            held.pop(record[id_field], None)
            now.append(record)
    return now


def trigger_decisions(out: RuleOutput, published_at: int) -> list[dict[str, Any]]:
    """`schemas/trigger_decision.avsc` records: every published and every suppressed firing."""
    records = [decision(t, "fired", "", published_at) for t in out.triggers]
    records += [decision(s.trigger, "suppressed", s.reason, None) for s in out.suppressed]
    return records


def decision(trigger: Trigger, outcome: str, reason: str, published_at: int | None) -> dict[str, Any]:
    return {"outcome": outcome, "reason": reason, "trigger_id": trigger.trigger_id, "rule": trigger.rule,
            "rule_type": trigger.rule_type, "kind": trigger.kind, "person_id": trigger.person_id,
            "member_id": trigger.member_id, "store_id": trigger.store_id, "event_time": trigger.event_time,
            "fired_at": trigger.fired_at, "cause_event_ids": list(trigger.cause_event_ids),
            "payload_record": trigger.payload_record,
            "payload_json": json.dumps(trigger.payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")),
            "published_at": published_at}


def trigger_key(trigger: Trigger) -> str:
    """Triggers are keyed by person; store-level ones by store."""
    return trigger.person_id or trigger.store_id or trigger.rule


def resolved_envelope(value: bytes, offset: int, events: list[dict[str, Any]], person_of: dict[int, str],
                      late: set[int]) -> dict[str, Any]:
    """`schemas/resolved_events.avsc`: an accepted record as it was, with each event's person and
    lateness (events the journey dropped as duplicates have no person: '')."""
    return {"events": value, "accepted_offset": offset,
            "person_ids": [person_of.get(id(e), "") for e in events],
            "late": [id(e) in late for e in events]}


def by_partition(records: list[dict[str, Any]], key_field: str, partitions: int,
                 per_record: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """(partition, records chunk) pairs: records grouped by the partition of their key (a person)."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(partition_for(record[key_field] or "", partitions), []).append(record)
    for partition, group in groups.items():
        for start in range(0, len(group), per_record):
            yield partition, group[start:start + per_record]
