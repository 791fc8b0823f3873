"""When a store visit becomes an *arrival*: the moment a person is known to be in the store.

The first check-in of the visit (in event time) at which either
- the phone is connected: a Wi-Fi `associate` or `portal_login` (how = "wifi_connected"), or
- the visit has become a `visitor` (pipeline/visits.py): dwell since the visit's start reaches
  `visitor_min_dwell_ms` and the best signal so far reaches `visitor_min_rssi_dbm` (how = "visitor").

browse_then_visit and vip_arrival fire on arrivals. The causing event is that check-in, so the
trigger id does not change as the visit grows: each batch's visit update finds the same arrival.
Worked example, thresholds 5 min / -70 dBm, times in minutes::

    check-in  t   kind       rssi   arrival?
    c1        0   probe      -80    no
    c2        3   probe      -65    no   (dwell 3 < 5)
    c3        6   probe      -66    yes: visitor at c3 (dwell 6, best -65)
    c4        7   associate  -60    (already arrived at c3)
"""

from __future__ import annotations

from typing import NamedTuple

from pipeline.visits import AT, CONNECTED, EVENT_ID, RSSI, Visit, VisitPolicy

WIFI_CONNECTED = "wifi_connected"
VISITOR = "visitor"


class Arrival(NamedTuple):
    at: int
    event_id: str
    how: str  # wifi_connected | visitor


def arrival_of(visit: Visit, policy: VisitPolicy) -> Arrival | None:
    """The visit's arrival, or None while it is a passerby that never connected."""
    min_rssi, min_dwell = policy.visitor_min_rssi_dbm, policy.visitor_min_dwell_ms
    if not visit.connected and (visit.max_rssi is None or visit.max_rssi < min_rssi
                                or visit.end - visit.start < min_dwell):
        return None  # the usual passerby: no walk over its check-ins
    start, best = visit.start, None
    for checkin in visit.checkins:
        if checkin[CONNECTED]:
            return Arrival(checkin[AT], checkin[EVENT_ID], WIFI_CONNECTED)
        rssi = checkin[RSSI]
        if rssi is not None and (best is None or rssi > best):
            best = rssi
        if best is not None and best >= min_rssi and checkin[AT] - start >= min_dwell:
            return Arrival(checkin[AT], checkin[EVENT_ID], VISITOR)
    return None
