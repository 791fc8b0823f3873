"""Identity: which person an event belongs to, from the identifiers it carries.

Identifiers are typed keys: ``m:<member_id>``, ``p:<phone_hash>``, ``d:<device_id>``,
``w:<wifi_mac_hash>``. An event carrying two or more links them; linked identifiers form one
person (union, transitively). A person id is itself an identifier key:

- a person holding a member id is ``m:<member_id>``, forever;
- an anonymous person is named after the highest-priority identifier (m > p > d > w) of the
  event that created it, e.g. ``d:ipad-7``.

Worked example (arrival order = rows)::

    event  identifiers          person      merge emitted
    e1     d:ipad-7             d:ipad-7    -
    e2     w:aa11               w:aa11      -
    e3     d:ipad-7, w:aa11     d:ipad-7    w:aa11 -> d:ipad-7   (anonymous + anonymous: the smaller
                                                                  id by (priority, text) survives)
    e4     m:42, d:ipad-7       m:42        d:ipad-7 -> m:42     (anonymous joins the member)

Every merge is emitted as a `PersonMerge` (from, to, event time): the session stage re-homes the
person's open sessions, sinks re-point stored events and closed sessions (an "identify" merge).

Conflicts -- a person holds at most one member id. An event that would put two member ids into
one person (a family tablet used by two members) is a conflict and merges nothing between them:

1. the event belongs to its own member if it carries one, else to the member person of its
   highest-priority identifier;
2. identifiers on the event owned by the *other* member's person stay there and become *shared*;
3. the event's other identifiers (new or anonymous) join the event's person as usual.

A shared identifier links nothing from then on; an event carrying only shared identifiers is
given to the identifier's owner (the first member) and counted as ambiguous, so downstream rules
can decide whether to market on it. Worked example::

    e1  m:A, d:tablet   -> m:A = {m:A, d:tablet}
    e2  m:B, d:tablet   -> m:B; conflict (d:tablet kept by m:A, refused m:B); d:tablet is shared
    e3  d:tablet        -> m:A (ambiguous)
    e4  d:tablet, w:x9  -> w:x9 (new anonymous person; the shared tablet links nothing)

Partitioning: linking is global (any two identifiers may meet in one event), so the graph must
see every event. Run the identity stage as a single writer (one partition, or one worker owning
all identity state); it costs a couple of dict look-ups per event (see bench/core_bench.py), then
re-keys each event by its person id for the session stage. State is a map identifier -> person
(plus the shared flag): `drain_changes()` gives the (key, value) pairs changed since the last
flush, for a compacted changelog keyed by identifier; `restore()` rebuilds from those pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

# Event field -> identifier kind, highest priority first. A phone number outranks a device
# (a tablet is shared more often than a phone), a device outranks a Wi-Fi MAC (randomised MACs).
IDENTIFIER_FIELDS = (("member_id", "m:"), ("phone_hash", "p:"), ("device_id", "d:"), ("wifi_mac_hash", "w:"))
_PRIORITY = {prefix[0]: rank for rank, (_, prefix) in enumerate(IDENTIFIER_FIELDS)}
_PERSON_FIELDS = {"m": "member_ids", "d": "device_ids", "w": "wifi_mac_hashes", "p": "phone_hashes"}


def identifier_keys(event: dict[str, Any]) -> list[str]:
    """The event's identifiers as typed keys, highest priority first."""
    keys = []
    for field, prefix in IDENTIFIER_FIELDS:
        value = event.get(field)
        if value:
            keys.append(prefix + value)
    return keys


def survivor_rank(person_id: str) -> tuple[int, str]:
    """Order among anonymous persons: the smallest survives a merge (deterministic, no extra state)."""
    return _PRIORITY[person_id[0]], person_id


@dataclass(frozen=True, slots=True)
class PersonMerge:
    """`from_person` is now part of `to_person`: re-point its events and sessions."""

    from_person: str
    to_person: str
    at_ms: int
    event_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"from_person": self.from_person, "to_person": self.to_person, "at": self.at_ms,
                "event_id": self.event_id}


@dataclass(frozen=True, slots=True)
class IdentityConflict:
    """An event tried to join two members' persons through `identifier`; refused, identifier shared."""

    identifier: str
    kept_person: str
    refused_person: str
    at_ms: int
    event_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"identifier": self.identifier, "kept_person": self.kept_person,
                "refused_person": self.refused_person, "at": self.at_ms, "event_id": self.event_id}


class IdentityGraph:
    """Identifier -> person, merged as events link identifiers. Pure state, no I/O."""

    def __init__(self, track_changes: bool = True) -> None:
        self.track_changes = track_changes  # off: drain_changes() is unused and nothing accumulates
        self._owner: dict[str, str] = {}            # identifier key -> person id
        # person id -> its identifier keys; tuples, so the collector can stop tracking them
        self._members: dict[str, tuple[str, ...]] = {}
        self._shared: set[str] = set()
        self._changed: set[str] = set()             # identifier keys changed since drain_changes()
        # Filled by resolve(), emptied by the caller (JourneyProcessor re-homes sessions on merges).
        self.pending_merges: list[PersonMerge] = []
        self.conflicts: list[IdentityConflict] = []
        self.ambiguous_events = 0

    # --- resolving events --------------------------------------------------------------------

    def resolve(self, event: dict[str, Any]) -> str:
        """The person id of `event`, linking its identifiers first (merges go to pending_merges)."""
        # A normalised event (pipeline.events) carries every identifier key, None when absent.
        member: str | None = event["member_id"]
        phone: str | None = event["phone_hash"]
        device: str | None = event["device_id"]
        mac: str | None = event["wifi_mac_hash"]
        # Most events carry exactly one identifier: one look-up, nothing to link (the hot path).
        if member:
            key = None if phone or device or mac else "m:" + member
        elif phone:
            key = None if device or mac else "p:" + phone
        elif device:
            key = None if mac else "d:" + device
        elif mac:
            key = "w:" + mac
        else:
            raise ValueError(f"event {event.get('event_id')!r} carries no identifier; validation must reject it")
        if key is None:  # same order as identifier_keys(): member, phone, device, Wi-Fi MAC
            keys = [k for k in (member and "m:" + member, phone and "p:" + phone, device and "d:" + device,
                                mac and "w:" + mac) if k]
            return self._resolve_links(keys, event)
        person = self._owner.get(key)
        if person is None:
            return self._new_person(key)
        if key in self._shared:
            self.ambiguous_events += 1
        return person

    def _resolve_links(self, keys: list[str], event: dict[str, Any]) -> str:
        owner = self._owner
        person, shared = owner.get(keys[0]), self._shared
        for key in keys:
            if owner.get(key) != person or key in shared:
                break
        else:
            if person is not None:
                return person  # already linked: the usual case for a returning customer
        usable = [key for key in keys if key not in self._shared]
        if not usable:
            self.ambiguous_events += 1
            return owner[keys[0]]
        known = list(dict.fromkeys(owner[key] for key in usable if key in owner))
        target = self._target_person(usable, known)
        for person in known:
            if person == target:
                continue
            if _is_member(person) and _is_member(target):
                self._refuse_link(person, target, usable, event)
            else:
                self._merge(person, target, event)
        for key in usable:
            if key not in owner:
                self._attach(key, target)
        return target

    def _target_person(self, usable: list[str], known: list[str]) -> str:
        """The event's person: its own member, else a member person, else the best anonymous one."""
        first = usable[0]
        if first[0] == "m":  # the event names its member: that is who it is
            return self._owner.get(first) or self._new_person(first)
        members = [person for person in known if _is_member(person)]
        if members:
            return members[0]  # `known` follows identifier priority
        if known:
            return min(known, key=survivor_rank)
        return self._new_person(first)

    def _refuse_link(self, other: str, target: str, usable: list[str], event: dict[str, Any]) -> None:
        for key in usable:
            if self._owner.get(key) == other and key[0] != "m":
                self._shared.add(key)
                self._note_changed((key,))
                self.conflicts.append(
                    IdentityConflict(key, other, target, event["occurred_at"], event["event_id"]))

    def _new_person(self, key: str) -> str:
        self._owner[key] = key
        self._members[key] = (key,)
        self._note_changed((key,))
        return key

    def _attach(self, key: str, person: str) -> None:
        self._owner[key] = person
        self._members[person] += (key,)
        self._note_changed((key,))

    def _merge(self, source: str, target: str, event: dict[str, Any]) -> None:
        moved = self._members.pop(source)
        for key in moved:
            self._owner[key] = target
        self._members[target] += moved
        self._note_changed(moved)
        self.pending_merges.append(PersonMerge(source, target, event["occurred_at"], event["event_id"]))

    def _note_changed(self, keys: tuple[str, ...]) -> None:
        if self.track_changes:
            self._changed.update(keys)

    # --- reading -----------------------------------------------------------------------------

    def person_of(self, key: str) -> str | None:
        return self._owner.get(key)

    def persons(self) -> Iterator[str]:
        return iter(self._members)

    def person_dict(self, person_id: str) -> dict[str, Any]:
        """{"person_id","member_ids","device_ids","wifi_mac_hashes","phone_hashes"} (sorted lists)."""
        out: dict[str, Any] = {"person_id": person_id, "member_ids": [], "device_ids": [],
                               "wifi_mac_hashes": [], "phone_hashes": []}
        for key in self._members[person_id]:
            out[_PERSON_FIELDS[key[0]]].append(key[2:])
        for field in _PERSON_FIELDS.values():
            out[field].sort()
        return out

    def is_shared(self, key: str) -> bool:
        return key in self._shared

    # --- state: snapshot, changelog, restore ---------------------------------------------------

    def _value(self, key: str) -> dict[str, Any]:
        return {"person_id": self._owner[key], "shared": key in self._shared}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """All state as {identifier key: {"person_id", "shared"}}: plain data."""
        return {key: self._value(key) for key in self._owner}

    def drain_changes(self) -> list[tuple[str, dict[str, Any]]]:
        """(identifier key, value) pairs changed since the last call: one changelog flush."""
        changes = [(key, self._value(key)) for key in sorted(self._changed)]
        self._changed.clear()
        return changes

    @classmethod
    def restore(cls, items: dict[str, dict[str, Any]] | Iterable[tuple[str, dict[str, Any]]]) -> IdentityGraph:
        """Rebuild from a snapshot or from changelog pairs (the last value of a key wins)."""
        graph = cls()
        pairs = items.items() if isinstance(items, dict) else items
        for key, value in pairs:
            graph._owner[key] = value["person_id"]
            if value.get("shared"):
                graph._shared.add(key)
            else:
                graph._shared.discard(key)
        for key, person in graph._owner.items():
            graph._members[person] = graph._members.get(person, ()) + (key,)
        return graph


def _is_member(person_id: str) -> bool:
    return person_id[0] == "m"
