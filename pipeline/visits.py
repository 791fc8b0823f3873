"""Store visits: a person's contiguous Wi-Fi presence at one store, from `wifi_checkin` events.

Per (person, store), sort the check-ins by time; a visit is cut between two consecutive ones when
(`split_into_visits` states the rule; `VisitTracker.add` applies it incrementally):

- the second comes more than `timeout_ms` (default 15 min) after the first, or
- the first is a `disassociate` and the second is strictly later (the phone left the network).

Dwell = end - start. A visit is a **visitor** when dwell >= `visitor_min_dwell_ms` (default 5 min)
and the signal says the phone was inside: the strongest RSSI >= `visitor_min_rssi_dbm` (default
-70 dBm), or the phone connected (`associate` / `portal_login`: only devices in range of the
store's access points can). Otherwise it is a **passerby**. Capture rate = visitors / (visitors
+ passersby). The inspiration is what Wi-Fi presence analytics products expose: Cisco Meraki's
Location Analytics (documentation.meraki.com, MR > Monitoring and Reporting > Location Analytics:
capture rate of passersby vs visitors, told apart by time seen and signal strength thresholds)
and Cloud4Wi's presence analytics (dwell and signal thresholds per venue). The defaults here are
the project's (DESIGN.md: a few minutes of dwell, RSSI above about -70 dBm), not those products'.

Worked example, timeout 15 min, times in minutes::

    check-in  t    kind           rssi   visits
    1         0    probe          -80    V1[0,0]
    2         4    associate      -60    V1[0,4]
    3         9    disassociate   None   V1[0,9]  ended: dwell 9 min, max -60 dBm -> visitor
    4         12   probe          -85    V2[12,12] (after a disassociate: new visit) -> passerby

Out-of-order check-ins are placed by event time: the fast path extends the newest visit; any
other case re-cuts the touched visits from their check-ins, so a late check-in can bridge two
visits or a late disassociate can split one. The result does not depend on arrival order within
the allowed lateness. A visit closes once the cutoff (max event time - allowed lateness, given by
the caller) passes end + timeout, or passes end for a visit ended by a disassociate.
"""

from __future__ import annotations

import bisect
from typing import Any, Final, Iterable

from mypy_extensions import mypyc_attr

from pipeline.deadlines import DeadlineIndex
from pipeline.events import format_occurred_at as iso_utc
from pipeline.policy import VisitPolicy
from pipeline.sessions import stable_id

CONNECTED_KINDS: Final = frozenset({"associate", "portal_login"})


# What a visit keeps of each wifi_checkin, enough to re-cut it when a late one arrives:
# (at ms, leaves = is a disassociate, rssi dBm or None, connected, event_id). A plain tuple read
# through these indices, not a NamedTuple: the collector stops tracking plain tuples of plain
# values, and a partition holds tens of thousands of check-ins.
CheckIn = tuple[int, bool, "int | None", bool, str]
AT: Final = 0
LEAVES: Final = 1
RSSI: Final = 2
CONNECTED: Final = 3
EVENT_ID: Final = 4


def _order(checkin: CheckIn) -> tuple[int, bool, str]:
    return checkin[AT], checkin[LEAVES], checkin[EVENT_ID]  # at equal times a disassociate goes last


def split_into_visits(checkins: list[CheckIn], timeout_ms: int) -> list[list[CheckIn]]:
    """Cut time-sorted check-ins into visits: by silence > timeout, or after a disassociate."""
    pieces: list[list[CheckIn]] = []
    previous: CheckIn | None = None
    for checkin in checkins:
        if (previous is None or checkin[AT] - previous[AT] > timeout_ms
                or (previous[LEAVES] and checkin[AT] > previous[AT])):
            pieces.append([])
        pieces[-1].append(checkin)
        previous = checkin
    return pieces


@mypyc_attr(acyclic=True)  # compiled: not tracked by the collector (it holds no cycles); no-op interpreted
class Visit:
    __slots__ = ("visit_id", "person_id", "store_id", "start", "end", "max_rssi", "connected", "ended",
                 "checkins")

    def __init__(self, visit_id: str, person_id: str, store_id: str, checkins: list[CheckIn]) -> None:
        self.visit_id = visit_id
        self.person_id = person_id
        self.store_id = store_id
        self.checkins: list[CheckIn] = []  # time-sorted (by `_order`)
        self.max_rssi: int | None = None
        self.connected = False
        for checkin in checkins:
            self.extend(checkin)
        self.start = checkins[0][AT]

    def extend(self, checkin: CheckIn) -> None:
        """Append a check-in that sorts at or after the last one (the in-order case)."""
        self.checkins.append(checkin)
        self.end = checkin[AT]
        self.ended = checkin[LEAVES]
        self._count_signal(checkin)

    def insert_inside(self, checkin: CheckIn) -> None:
        """Insert a late check-in between start and end that cannot cut the visit (not a disassociate)."""
        bisect.insort(self.checkins, checkin, key=_order)
        self._count_signal(checkin)

    def _count_signal(self, checkin: CheckIn) -> None:
        rssi = checkin[RSSI]
        if rssi is not None and (self.max_rssi is None or rssi > self.max_rssi):
            self.max_rssi = rssi
        if checkin[CONNECTED]:
            self.connected = True

    @property
    def event_ids(self) -> list[str]:
        return [c[EVENT_ID] for c in self.checkins]

    @property
    def dwell_ms(self) -> int:
        return self.end - self.start

    def visit_class(self, policy: VisitPolicy) -> str:
        inside = self.connected or (self.max_rssi is not None and self.max_rssi >= policy.visitor_min_rssi_dbm)
        return "visitor" if inside and self.dwell_ms >= policy.visitor_min_dwell_ms else "passerby"

    def to_dict(self, policy: VisitPolicy) -> dict[str, Any]:
        """The shape `o2o dry-run --json` prints."""
        return {"person_id": self.person_id, "store_id": self.store_id, "start": iso_utc(self.start),
                "end": iso_utc(self.end), "dwell_s": self.dwell_ms // 1000, "class": self.visit_class(policy)}

    def to_record(self, policy: VisitPolicy) -> dict[str, Any]:
        """Everything, epoch ms, JSON-safe: for sinks, changelogs and `from_record`.

        The check-ins stay tuples (JSON arrays all the same): a list each made every record cost
        one tracked object per check-in, and the collections they set off were most of its time."""
        return {"visit_id": self.visit_id, "person_id": self.person_id, "store_id": self.store_id,
                "start": self.start, "end": self.end, "dwell_s": self.dwell_ms // 1000,
                "class": self.visit_class(policy), "max_rssi": self.max_rssi, "connected": self.connected,
                "ended_by_disassociate": self.ended, "checkins": list(self.checkins)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Visit:
        checkins = [tuple(c) for c in record["checkins"]]
        return cls(record["visit_id"], record["person_id"], record["store_id"], checkins)


class VisitTracker:
    """Open visits per person and store. Outputs accumulate until `drain()`."""

    def __init__(self, policy: VisitPolicy = VisitPolicy()) -> None:
        self.policy = policy
        self._timeout = policy.timeout_ms  # read per event
        self._open: dict[str, dict[str, list[Visit]]] = {}  # person -> store -> visits sorted by start
        self._by_id: dict[str, Visit] = {}
        self._deadlines = DeadlineIndex()                    # (closing deadline, visit_id)
        self.updated: dict[Visit, None] = {}  # changed and still open since drain(), in order
        self.closed: list[Visit] = []
        self.absorbed: list[tuple[str, str]] = []

    def add(self, person_id: str, store_id: str, event: dict[str, Any], t: int) -> Visit:
        """Put one accepted wifi_checkin into its visit; returns that visit."""
        return self.add_read(person_id, store_id, event, t, event["event_id"])

    def add_read(self, person_id: str, store_id: str, event: dict[str, Any], t: int, event_id: str) -> Visit:
        """`add`, given the event's event_id (JourneyProcessor reads each field once per event)."""
        kind: str = event["kind"]
        checkin = (t, kind == "disassociate", event["rssi"], kind in CONNECTED_KINDS, event_id)
        stores = self._open.get(person_id)
        if stores is None:
            stores = self._open[person_id] = {}
        visits = stores.get(store_id)
        if not visits:
            visit = self._start(person_id, store_id, [checkin])
            stores[store_id] = [visit]
        else:
            last, timeout = visits[-1], self._timeout
            if t >= last.end and not last.ended and t - last.end <= timeout:
                visit = last  # in order, within the timeout: the usual case
                visit.extend(checkin)
                if checkin[LEAVES]:  # its deadline moved earlier: stale entries are only re-checked later
                    self._deadlines.push(self._deadline(visit), visit.visit_id)
            elif t > last.end + timeout or (last.ended and t > last.end):
                visit = self._start(person_id, store_id, [checkin])
                visits.append(visit)
            elif last.start < t < last.end and not checkin[LEAVES]:
                visit = last  # late, inside the newest visit: only closes a gap, cannot cut
                visit.insert_inside(checkin)
            else:
                pieces = self._recut(visits, person_id, store_id, [checkin], t - timeout, t + timeout)
                visit = next(v for v in pieces if checkin in v.checkins)
        self.updated[visit] = None
        return visit

    def _recut(self, visits: list[Visit], person_id: str, store_id: str, new: list[CheckIn],
               low: int, high: int) -> list[Visit]:
        """Re-cut the visits reaching into [low, high] together with `new` check-ins (slow path).

        A resulting visit keeps the id of the earliest old visit whose first check-in it holds;
        an old visit whose first check-in lands in another visit is reported as absorbed.
        """
        touched = [v for v in visits if v.start <= high and v.end >= low]
        checkins = sorted([c for v in touched for c in v.checkins] + new, key=_order)
        first_of = {v.checkins[0]: v for v in touched}
        result: list[Visit] = []
        new_id_of: dict[str, str] = {}  # old visit id -> id of the visit now holding its first check-in
        for piece in split_into_visits(checkins, self.policy.timeout_ms):
            heirs = [first_of[c] for c in piece if c in first_of]
            visit_id = heirs[0].visit_id if heirs else self._fresh_id(person_id, store_id, piece[0][EVENT_ID], result)
            for old in heirs:
                new_id_of[old.visit_id] = visit_id
            result.append(Visit(visit_id, person_id, store_id, piece))
        for old in touched:
            visits.remove(old)
            self._forget(old)
            if new_id_of[old.visit_id] != old.visit_id:
                self.absorbed.append((old.visit_id, new_id_of[old.visit_id]))
        for visit in result:
            self._remember(visit)
            self.updated[visit] = None
        visits.extend(result)
        visits.sort(key=lambda v: v.start)
        return result

    def _start(self, person_id: str, store_id: str, checkins: list[CheckIn]) -> Visit:
        visit = Visit(self._fresh_id(person_id, store_id, checkins[0][EVENT_ID]), person_id, store_id, checkins)
        self._remember(visit)
        return visit

    def _fresh_id(self, person_id: str, store_id: str, event_id: str, pending: list[Visit] | None = None) -> str:
        """Deterministic from the visit's first check-in; re-hashed in the rare case it is taken (a
        visit keeps its id when a late check-in moves its start, so a split can meet the old seed)."""
        visit_id = stable_id(person_id, store_id, event_id)
        taken = {v.visit_id for v in pending} if pending else ()
        while visit_id in self._by_id or visit_id in taken:
            visit_id = stable_id(visit_id, "next")
        return visit_id

    def _remember(self, visit: Visit) -> None:
        self._by_id[visit.visit_id] = visit
        self._deadlines.push(self._deadline(visit), visit.visit_id)

    def _forget(self, visit: Visit) -> None:
        del self._by_id[visit.visit_id]
        self.updated.pop(visit, None)

    def _deadline(self, visit: Visit) -> int:
        """The visit can change until the cutoff passes this time."""
        return visit.end if visit.ended else visit.end + self._timeout

    # --- identity merges -------------------------------------------------------------------------

    def take_person(self, person_id: str) -> list[Visit]:
        stores = self._open.pop(person_id, {})
        visits = [v for store_visits in stores.values() for v in store_visits]
        for visit in visits:
            self._forget(visit)
        return visits

    def adopt(self, person_id: str, visits: Iterable[Visit]) -> None:
        """Re-home visits under `person_id`, re-cutting where they meet its visits at the same store."""
        timeout = self.policy.timeout_ms
        for incoming in visits:
            stores = self._open.setdefault(person_id, {})
            mine = stores.setdefault(incoming.store_id, [])
            incoming.person_id = person_id
            self._remember(incoming)
            mine.append(incoming)
            mine.sort(key=lambda v: v.start)
            self.updated[incoming] = None
            low, high = incoming.start - timeout, incoming.end + timeout
            if any(v is not incoming and v.start <= high and v.end >= low for v in mine):
                self._recut(mine, person_id, incoming.store_id, [], low, high)

    # --- closing -----------------------------------------------------------------------------------

    def close_before(self, cutoff_ms: int) -> None:
        deadlines = self._deadlines
        for _, visit_id in deadlines.pop_before(cutoff_ms):
            visit = self._by_id.get(visit_id)
            if visit is None:
                continue
            deadline = self._deadline(visit)
            if deadline >= cutoff_ms:
                deadlines.push(deadline, visit_id)
                continue
            self._close(visit)

    def close_all(self) -> None:
        for visit in list(self._by_id.values()):
            self._close(visit)
        self._deadlines.clear()

    def _close(self, visit: Visit) -> None:
        stores = self._open[visit.person_id]
        visits = stores[visit.store_id]
        visits.remove(visit)
        if not visits:
            del stores[visit.store_id]
            if not stores:
                del self._open[visit.person_id]
        self._forget(visit)
        self.closed.append(visit)

    # --- outputs and state ---------------------------------------------------------------------------

    def drain(self) -> tuple[list[Visit], list[Visit], list[tuple[str, str]]]:
        """(updated open visits, closed visits, absorbed (id, into)) since the last drain."""
        out = (list(self.updated), self.closed, self.absorbed)
        self.updated, self.closed, self.absorbed = {}, [], []
        return out

    def open_visits(self, person_id: str | None = None) -> list[Visit]:
        if person_id is not None:
            return [v for vs in self._open.get(person_id, {}).values() for v in vs]
        return list(self._by_id.values())

    def snapshot(self) -> list[dict[str, Any]]:
        return [visit.to_record(self.policy) for visit in self._by_id.values()]

    def restore(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            visit = Visit.from_record(record)
            self._remember(visit)
            visits = self._open.setdefault(visit.person_id, {}).setdefault(visit.store_id, [])
            visits.append(visit)
            visits.sort(key=lambda v: v.start)
