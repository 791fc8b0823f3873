"""The trigger record: what a rule publishes on `o2o.triggers.<rule>` (Avro: `schemas/trigger.avsc`).

`trigger_id` is a function of the rule instance's name and the *causing* event ids only (sorted, so
their order does not matter). A replay, a restart or a re-evaluation of the same cause can only ever
produce the same id, and push services deduplicate on it. Two examples:

    rule               causes                         trigger_id
    browse_then_visit  ["gw7-000123"]                 blake2b("browse_then_visit", "gw7-000123")
    abandoned_browse   ["app-9", "app-3", "app-5"]    blake2b("abandoned_browse", "app-3", "app-5", "app-9")

Times are epoch milliseconds of *event time*: `event_time` is when the cause happened (the
check-in, the purchase, the last event of the session); `fired_at` is the event time at which the
rule fired (the same for immediate rules; the due time for a `share_invite` timer; the window
opening for a firing held over quiet hours). The agent adds the wall-clock `published_at`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any, Iterable

from pipeline.events import format_occurred_at as iso_utc

MARKETING = "marketing"
SERVICE = "service"

# Why a firing was not published; each is a metric label and a `suppressed[].reason` in o2o dry-run.
CONSENT = "consent"                  # the person's latest consent_marketing is false
COMPLAINT = "complaint_suppression"  # a complaint within the complaint_recovery suppression period
COOLDOWN = "cooldown"                # the same rule fired for this person within cooldown_h
DAILY_CAP = "daily_cap"              # the person already had daily_cap marketing triggers that day
QUIET_HOURS = "quiet_hours"          # in quiet hours with mode: drop
REASONS = (CONSENT, COMPLAINT, COOLDOWN, DAILY_CAP, QUIET_HOURS)


def trigger_id(rule: str, cause_event_ids: Iterable[str]) -> str:
    """Deterministic id: blake2b-128 of the rule name and the sorted, distinct causing event ids."""
    digest = blake2b(digest_size=16)
    for part in (rule, *sorted(set(cause_event_ids))):
        encoded = part.encode()
        digest.update(len(encoded).to_bytes(4, "big"))  # length-prefixed: no separator ambiguity
        digest.update(encoded)
    return digest.hexdigest()


def member_of(person_id: str | None) -> str | None:
    """The member id of a member person (`m:<member_id>`), else None."""
    return person_id[2:] if person_id and person_id.startswith("m:") else None


@dataclass(frozen=True, slots=True)
class Trigger:
    trigger_id: str
    rule: str                      # the rule instance's name; its topic is o2o.triggers.<rule>
    rule_type: str
    kind: str                      # marketing | service
    person_id: str | None          # None only for store-level triggers (store_complaint_spike)
    member_id: str | None
    store_id: str | None
    event_time: int
    fired_at: int
    cause_event_ids: tuple[str, ...]
    payload: dict[str, Any] = field(hash=False, compare=True)
    payload_record: str = ""       # the Avro record name of the payload branch

    @classmethod
    def build(cls, rule: Any, person_id: str | None, store_id: str | None, event_time: int, fired_at: int,
              causes: Iterable[str], payload: dict[str, Any], member_id: str | None = None) -> Trigger:
        """A trigger of `rule` (a compiled rule: name, TYPE, KIND, PAYLOAD_RECORD) with its id."""
        causes = tuple(sorted(set(causes)))
        return cls(trigger_id(rule.name, causes), rule.name, rule.TYPE, rule.KIND, person_id,
                   member_id if member_id is not None else member_of(person_id), store_id, event_time,
                   fired_at, causes, payload, rule.PAYLOAD_RECORD)

    def for_person(self, person_id: str) -> Trigger:
        """The same firing after an identity merge moved its person."""
        return Trigger(self.trigger_id, self.rule, self.rule_type, self.kind, person_id,
                       member_of(person_id) or self.member_id, self.store_id, self.event_time, self.fired_at,
                       self.cause_event_ids, self.payload, self.payload_record)

    def at(self, fired_at: int) -> Trigger:
        """The same firing at another time (a held firing released at the window opening)."""
        return Trigger(self.trigger_id, self.rule, self.rule_type, self.kind, self.person_id, self.member_id,
                       self.store_id, self.event_time, fired_at, self.cause_event_ids, self.payload,
                       self.payload_record)

    @property
    def is_marketing(self) -> bool:
        return self.kind == MARKETING

    def topic(self, prefix: str = "o2o") -> str:
        return f"{prefix}.triggers.{self.rule}"

    def to_record(self, published_at: int | None = None) -> dict[str, Any]:
        """The Avro datum for `schemas/trigger.avsc` (payload in fastavro's (record name, datum) form)."""
        return {"trigger_id": self.trigger_id, "rule": self.rule, "rule_type": self.rule_type, "kind": self.kind,
                "person_id": self.person_id, "member_id": self.member_id, "store_id": self.store_id,
                "event_time": self.event_time, "fired_at": self.fired_at,
                "cause_event_ids": list(self.cause_event_ids), "payload": (self.payload_record, dict(self.payload)),
                "published_at": published_at}

    def to_plain(self) -> dict[str, Any]:
        """JSON-safe, epoch ms: for state snapshots and changelogs (`from_plain` reads it back)."""
        return {"id": self.trigger_id, "rule": self.rule, "type": self.rule_type, "kind": self.kind,
                "person": self.person_id, "member": self.member_id, "store": self.store_id,
                "event_time": self.event_time, "fired_at": self.fired_at, "causes": list(self.cause_event_ids),
                "payload": self.payload, "record": self.payload_record}

    @classmethod
    def from_plain(cls, plain: dict[str, Any]) -> Trigger:
        return cls(plain["id"], plain["rule"], plain["type"], plain["kind"], plain["person"], plain["member"],
                   plain["store"], plain["event_time"], plain["fired_at"], tuple(plain["causes"]),
                   plain["payload"], plain["record"])

    def to_dict(self) -> dict[str, Any]:
        """The shape `o2o dry-run --json` prints under `triggers`: ISO times in UTC."""
        return {"trigger_id": self.trigger_id, "rule": self.rule, "rule_type": self.rule_type, "kind": self.kind,
                "person_id": self.person_id, "member_id": self.member_id, "store_id": self.store_id,
                "event_time": iso_utc(self.event_time), "fired_at": iso_utc(self.fired_at),
                "cause_event_ids": list(self.cause_event_ids), "payload": dict(self.payload)}


@dataclass(frozen=True, slots=True)
class Suppressed:
    """A firing that was not published, and why (one of REASONS)."""

    trigger: Trigger
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The shape `o2o dry-run --json` prints under `suppressed`."""
        t = self.trigger
        return {"trigger_id": t.trigger_id, "rule": t.rule, "person_id": t.person_id, "reason": self.reason,
                "store_id": t.store_id, "event_time": iso_utc(t.event_time), "fired_at": iso_utc(t.fired_at),
                "cause_event_ids": list(t.cause_event_ids)}


@dataclass(frozen=True, slots=True)
class Held:
    """A marketing firing in quiet hours (mode: hold), to be published at `release_at` if still allowed."""

    trigger: Trigger
    release_at: int

    def to_dict(self) -> dict[str, Any]:
        return {"trigger_id": self.trigger.trigger_id, "rule": self.trigger.rule,
                "person_id": self.trigger.person_id, "fired_at": iso_utc(self.trigger.fired_at),
                "release_at": iso_utc(self.release_at)}


@dataclass(slots=True)
class RuleOutput:
    """What one call decided: published triggers, suppressed firings, firings held over quiet hours."""

    triggers: list[Trigger] = field(default_factory=list)
    suppressed: list[Suppressed] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)

    def extend(self, other: RuleOutput) -> None:
        self.triggers += other.triggers
        self.suppressed += other.suppressed
        self.held += other.held
