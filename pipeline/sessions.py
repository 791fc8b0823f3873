"""Sessions: a person's activity across app, web, mini-program, Wi-Fi, POS and call centre.

Event-time session windows with Kafka Streams semantics. An event at time t touches every open
session of its person whose span, widened by the inactivity gap, contains t:
``start - gap <= t <= end + gap``. Then (this is `SessionTracker._place`, where sessions are cut;
`SessionTracker.add` takes a shortcut for in-order events that reaches the same decision):

- touches nothing                 -> a new session starts (cut by inactivity);
- touches one or more, and the
  resulting span <= max_length    -> they all become one session (extend, or merge a bridge);
- span would exceed max_length    -> the event joins the touched session that can take it
                                     (the one holding t, else the nearest), or starts a new
                                     session (cut by max length).

Worked example, gap 30 min, times in minutes, arrival order = rows::

    event  t     sessions after it
    a      0     S1[0,0]
    b      50    S1[0,0] S2[50,50]          (50 - 0 > 30: cut by inactivity)
    c      25    S1[0,50] {a,c,b}           (c is within 30 of both: bridge, S2 absorbed into S1)

A merged session keeps the id of the earlier one; the absorbed id is reported so sinks delete it.
Session ids are stable: a hash of (person, first event id) taken when the session is created.

Lateness and closing are driven by a *cutoff* the caller computes (JourneyProcessor:
cutoff = max event time seen - allowed lateness). Events older than the cutoff never reach this
module; a session closes once ``end + gap < cutoff``: no accepted event can touch it any more,
so the closed version is final. Identity merges move a person's open sessions to the surviving
person (`take_person` / `adopt`); they merge there under the same rules. Sessions already closed
stay as they are: sinks re-point them with the emitted `PersonMerge`, they are not re-merged.

Order-independence: with max_length large enough never to cut, any arrival order within the
allowed lateness yields the same sessions (event sets, spans, aggregates). A max-length cut
depends on which events were there first, so very long activity may be cut at different points
when it arrives out of order.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final, Iterable

from mypy_extensions import mypyc_attr

from pipeline.deadlines import DeadlineIndex
from pipeline.events import ENUMS, EVENT_TYPES
from pipeline.events import format_occurred_at as iso_utc
from pipeline.policy import SessionPolicy

# The schema's channels, one bit each: a session keeps the channels it saw as one int.
CHANNELS: tuple[str, ...] = ENUMS[("browse", "channel")]
CHANNEL_BIT: Final[dict[str, int]] = {channel: 1 << i for i, channel in enumerate(CHANNELS)}
# Online channels; the rest (wifi, pos, call_center, other) happen in or about a shop: offline.
ONLINE_CHANNELS = frozenset({"app", "web", "mini_program"})
ONLINE_MASK: Final = sum(CHANNEL_BIT[c] for c in ONLINE_CHANNELS)
OTHER_BIT = CHANNEL_BIT["other"]
# A session counts each event type in its own slot; Session.add spells the types out.
_COUNT_FIELDS = {kind: f"n_{kind}" for kind in EVENT_TYPES}
_CHANNEL_SPLITS: dict[int, tuple[list[str], list[str]]] = {}  # channel bits -> (online, offline)
NEVER: Final = 1 << 62  # "no online event yet" sentinel for min(); fits an Int64 column


_ID_HASH: Final = hashlib.blake2b(digest_size=10)  # copied per id: half the cost of a call with keywords


def stable_id(*parts: str) -> str:
    """A short deterministic id: the same inputs give the same id on every replay and worker."""
    digest = _ID_HASH.copy()
    digest.update("|".join(parts).encode())
    return digest.hexdigest()


@mypyc_attr(acyclic=True)  # compiled: not tracked by the collector (it holds no cycles); no-op interpreted
class Session:
    """One session's running aggregates. Mutable; `to_record()` / `from_record()` give plain data.

    Kept small on purpose (ints for counts and channels, a store set only once a store shows up):
    a busy partition holds tens of thousands of open sessions, and at that size every separate
    object an event has to touch is a cache miss.
    """

    __slots__ = ("session_id", "person_id", "start", "end", "n_browse", "n_wifi_checkin", "n_purchase",
                 "n_share", "n_complaint", "channel_bits", "stores", "revenue_cents", "first_online",
                 "last_offline", "event_ids")

    def __init__(self, session_id: str, person_id: str, t: int) -> None:
        self.session_id = session_id
        self.person_id = person_id
        self.start = t
        self.end = t
        self.n_browse = self.n_wifi_checkin = self.n_purchase = self.n_share = self.n_complaint = 0
        self.channel_bits = 0
        self.stores: set[str] | None = None
        self.revenue_cents = 0
        self.first_online = NEVER   # earliest online event, for online_to_offline
        self.last_offline = -NEVER  # latest offline event
        self.event_ids: list[str] = []

    def add(self, event: dict[str, Any], t: int, event_id: str, kind: str, store: str | None) -> None:
        """Count one normalised event (pipeline.events: every common key present, type keys per type),
        given with its event_id, event_type and store_id (the caller has read them already)."""
        if t < self.start:
            self.start = t
        elif t > self.end:
            self.end = t
        self.event_ids.append(event_id)
        if kind == "browse":
            self.n_browse += 1
        elif kind == "wifi_checkin":
            self.n_wifi_checkin += 1
        elif kind == "purchase":
            self.n_purchase += 1
            if event["status"] == "paid":
                self.revenue_cents += event["amount_cents"] or 0
        elif kind == "share":
            self.n_share += 1
        else:
            self.n_complaint += 1
        bit: int = CHANNEL_BIT[event["channel"]]
        self.channel_bits |= bit
        if bit & ONLINE_MASK:
            if t < self.first_online:
                self.first_online = t
        elif t > self.last_offline:
            self.last_offline = t
        if store:
            if self.stores is None:
                self.stores = {store}
            else:
                self.stores.add(store)

    def absorb(self, other: Session) -> None:
        """Fold `other` (a later or overlapping session of the same person) into this one."""
        self.start = min(self.start, other.start)
        self.end = max(self.end, other.end)
        for field in _COUNT_FIELDS.values():
            setattr(self, field, getattr(self, field) + getattr(other, field))
        self.channel_bits |= other.channel_bits
        if other.stores:
            self.stores = (self.stores or set()) | other.stores
        self.revenue_cents += other.revenue_cents
        self.first_online = min(self.first_online, other.first_online)
        self.last_offline = max(self.last_offline, other.last_offline)
        self.event_ids.extend(other.event_ids)

    @property
    def counts(self) -> dict[str, int]:
        """Events by type, types seen only: {"browse": 3, "purchase": 1}."""
        pairs = (("browse", self.n_browse), ("wifi_checkin", self.n_wifi_checkin), ("purchase", self.n_purchase),
                 ("share", self.n_share), ("complaint", self.n_complaint))
        return {kind: n for kind, n in pairs if n}

    @property
    def channels(self) -> list[str]:
        return [c for c in CHANNELS if self.channel_bits & CHANNEL_BIT[c]]

    def _channels_split(self) -> tuple[list[str], list[str]]:
        """(online, offline) channel names, sorted; memoised per bit pattern (records are frequent)."""
        split = _CHANNEL_SPLITS.get(self.channel_bits)
        if split is None:
            names = self.channels
            split = _CHANNEL_SPLITS[self.channel_bits] = (
                sorted(c for c in names if c in ONLINE_CHANNELS), sorted(c for c in names if c not in ONLINE_CHANNELS))
        return split

    @property
    def store_ids(self) -> list[str]:
        return sorted(self.stores) if self.stores else []

    @property
    def event_count(self) -> int:
        return len(self.event_ids)

    @property
    def online_to_offline(self) -> bool:
        """An online event followed later, in this session, by an offline one."""
        return self.first_online < self.last_offline

    @property
    def has_complaint(self) -> bool:
        return self.n_complaint > 0

    @property
    def has_share(self) -> bool:
        return self.n_share > 0

    def to_dict(self) -> dict[str, Any]:
        """The shape `o2o dry-run --json` prints: ISO times, sorted stores."""
        return {"session_id": self.session_id, "person_id": self.person_id, "start": iso_utc(self.start),
                "end": iso_utc(self.end), "event_ids": list(self.event_ids), "counts": dict(self.counts),
                "stores": self.store_ids, "revenue_cents": self.revenue_cents,
                "online_to_offline": self.online_to_offline}

    def to_record(self) -> dict[str, Any]:
        """Everything, epoch ms, JSON-safe: for sinks, changelogs and `from_record`."""
        online, offline = self._channels_split()
        return {"session_id": self.session_id, "person_id": self.person_id, "start": self.start,
                "end": self.end, "event_count": len(self.event_ids), "counts": self.counts,
                "online_channels": online[:], "offline_channels": offline[:], "stores": self.store_ids,
                "revenue_cents": self.revenue_cents, "has_complaint": self.has_complaint,
                "has_share": self.has_share, "online_to_offline": self.online_to_offline,
                "first_online": self.first_online, "last_offline": self.last_offline,
                "event_ids": list(self.event_ids)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Session:
        session = cls(record["session_id"], record["person_id"], record["start"])
        session.end = record["end"]
        for kind, n in record["counts"].items():
            setattr(session, _COUNT_FIELDS[kind], n)
        for channel in record["online_channels"] + record["offline_channels"]:
            session.channel_bits |= CHANNEL_BIT.get(channel, OTHER_BIT)
        session.stores = set(record["stores"]) or None
        session.revenue_cents = record["revenue_cents"]
        session.first_online = record["first_online"]
        session.last_offline = record["last_offline"]
        session.event_ids = list(record["event_ids"])
        return session


class SessionTracker:
    """Open sessions per person, sorted by start. Outputs accumulate until `drain()`."""

    def __init__(self, policy: SessionPolicy = SessionPolicy()) -> None:
        self.policy = policy
        self._gap, self._max_length = policy.gap_ms, policy.max_length_ms  # read per event
        self._open: dict[str, list[Session]] = {}
        self._by_id: dict[str, Session] = {}
        self._deadlines = DeadlineIndex()  # (end + gap, session_id); stale entries re-checked
        # Changed and still open since drain(); keyed by the object (no id string to fetch), ordered.
        self.updated: dict[Session, None] = {}
        self.closed: list[Session] = []
        self.absorbed: list[tuple[str, str]] = []      # (absorbed id, surviving id)

    # --- adding events -------------------------------------------------------------------------

    def add(self, person_id: str, event: dict[str, Any], t: int) -> Session:
        """Put one accepted (not late) event into its session; returns that session."""
        return self.add_read(person_id, event, t, event["event_id"], event["event_type"], event["store_id"])

    def add_read(self, person_id: str, event: dict[str, Any], t: int, event_id: str, kind: str,
                 store: str | None) -> Session:
        """`add`, given the event's event_id, event_type and store_id: JourneyProcessor reads each
        field once per event (a dict look-up each, at tens of look-ups an event, adds up)."""
        sessions = self._open.get(person_id)
        if not sessions:
            session = self._start(person_id, event_id, t)
            self._open[person_id] = [session]
        else:
            last, gap = sessions[-1], self._gap
            # In order and out of reach of older sessions (no session contains another, so the
            # one before `last` ends last among them): only `last` can be touched. The same
            # decision _place() makes, without building lists.
            if t >= last.start and (len(sessions) == 1 or sessions[-2].end + gap < t):
                if t <= last.end + gap and (t if t > last.end else last.end) - last.start <= self._max_length:
                    session = last
                else:
                    session = self._start(person_id, event_id, t)  # cut: inactivity or max length
                    sessions.append(session)
            else:
                session = self._place(sessions, person_id, event_id, t)
        session.add(event, t, event_id, kind, store)
        self.updated[session] = None
        return session

    def _place(self, sessions: list[Session], person_id: str, event_id: str, t: int) -> Session:
        """Where a session is cut or merged: the general rule of the module docstring."""
        gap, max_length = self.policy.gap_ms, self.policy.max_length_ms
        touched = [s for s in sessions if s.start - gap <= t <= s.end + gap]
        if touched:
            start = min(touched[0].start, t)
            end = max(max(s.end for s in touched), t)
            if end - start <= max_length:
                return self._merge_into_first(sessions, touched)
            fitting = [s for s in touched if max(s.end, t) - min(s.start, t) <= max_length]
            if fitting:
                return min(fitting, key=lambda s: _distance(s, t))  # ties: the earliest
        session = self._start(person_id, event_id, t)  # cut: inactivity, or max length
        _insert_sorted(sessions, session)
        return session

    def _merge_into_first(self, sessions: list[Session], touched: list[Session]) -> Session:
        survivor = touched[0]  # earliest start: `sessions` is sorted
        for other in touched[1:]:
            survivor.absorb(other)
            sessions.remove(other)
            self._forget(other)
            self.absorbed.append((other.session_id, survivor.session_id))
        return survivor

    def _start(self, person_id: str, event_id: str, t: int) -> Session:
        session_id = stable_id(person_id, event_id)
        while session_id in self._by_id:  # only a duplicate event id gets here; keep both sessions intact
            session_id = stable_id(session_id, "next")
        session = Session(session_id, person_id, t)
        self._by_id[session.session_id] = session
        self._deadlines.push(t + self._gap, session.session_id)
        return session

    def _forget(self, session: Session) -> None:
        del self._by_id[session.session_id]
        self.updated.pop(session, None)

    # --- identity merges -------------------------------------------------------------------------

    def take_person(self, person_id: str) -> list[Session]:
        """Remove and return a person's open sessions (to adopt them under another person)."""
        sessions = self._open.pop(person_id, [])
        for session in sessions:
            self._forget(session)
        return sessions

    def adopt(self, person_id: str, sessions: Iterable[Session]) -> None:
        """Re-home sessions under `person_id`; each merges with the sessions it touches while the
        result fits max_length (so, as with events, no session ends up inside another)."""
        for incoming in sessions:
            mine = self._open.setdefault(person_id, [])
            incoming.person_id = person_id
            self._by_id[incoming.session_id] = incoming
            self._deadlines.push(incoming.end + self.policy.gap_ms, incoming.session_id)
            _insert_sorted(mine, incoming)
            merged = incoming
            while (other := self._mergeable_neighbour(mine, merged)) is not None:
                merged = self._merge_into_first(mine, sorted((merged, other), key=_start_order))
            self.updated[merged] = None

    def _mergeable_neighbour(self, sessions: list[Session], session: Session) -> Session | None:
        gap, max_length = self.policy.gap_ms, self.policy.max_length_ms
        for other in sessions:
            if (other is not session and other.start - gap <= session.end and session.start <= other.end + gap
                    and max(other.end, session.end) - min(other.start, session.start) <= max_length):
                return other
        return None

    # --- closing -----------------------------------------------------------------------------------

    def close_before(self, cutoff_ms: int) -> None:
        """Close every session with end + gap < cutoff: no accepted event can reach it any more."""
        deadlines, gap, by_id = self._deadlines, self.policy.gap_ms, self._by_id
        for _, session_id in deadlines.pop_before(cutoff_ms):
            session = by_id.get(session_id)
            if session is None:
                continue  # absorbed, moved or already closed; a fresher entry exists if moved
            if session.end + gap >= cutoff_ms:
                deadlines.push(session.end + gap, session_id)  # it grew since it was pushed
            else:
                self._close(session)

    def close_all(self) -> None:
        for session in list(self._by_id.values()):
            self._close(session)
        self._deadlines.clear()

    def _close(self, session: Session) -> None:
        sessions = self._open[session.person_id]
        sessions.remove(session)
        if not sessions:
            del self._open[session.person_id]
        self._forget(session)
        self.closed.append(session)

    # --- outputs and state ---------------------------------------------------------------------------

    def drain(self) -> tuple[list[Session], list[Session], list[tuple[str, str]]]:
        """(updated open sessions, closed sessions, absorbed (id, into)) since the last drain."""
        out = (list(self.updated), self.closed, self.absorbed)
        self.updated, self.closed, self.absorbed = {}, [], []
        return out

    def open_sessions(self, person_id: str | None = None) -> list[Session]:
        if person_id is not None:
            return list(self._open.get(person_id, ()))
        return list(self._by_id.values())

    def snapshot(self) -> list[dict[str, Any]]:
        return [session.to_record() for session in self._by_id.values()]

    def restore(self, records: Iterable[dict[str, Any]]) -> None:
        """Load open sessions (from `snapshot()` or changelog values) into an empty tracker."""
        for record in records:
            session = Session.from_record(record)
            self._by_id[session.session_id] = session
            _insert_sorted(self._open.setdefault(session.person_id, []), session)
            self._deadlines.push(session.end + self.policy.gap_ms, session.session_id)


def _start_order(session: Session) -> tuple[int, str]:
    return session.start, session.session_id


def _insert_sorted(sessions: list[Session], session: Session) -> None:
    index = len(sessions)
    while index and _start_order(sessions[index - 1]) > _start_order(session):
        index -= 1
    sessions.insert(index, session)


def _distance(session: Session, t: int) -> int:
    if session.start <= t <= session.end:
        return 0
    return session.start - t if t < session.start else t - session.end
