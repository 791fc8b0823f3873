"""browse_then_visit: browsed products online within the last N days, now in a store -> coupon moment.

Fires on the person's *arrival* at a store (see `arrival.py`: a Wi-Fi associate / portal_login, or
the visit becoming a visitor), when the person browsed at least one sku in
``[arrival - window_days, arrival]``. Payload: the store and the browsed skus, most recent first,
at most `max_skus`. Cause: the arrival check-in, so one visit gives one trigger id.

    t (days)  event                               result
    -8        browse sku-1                        (outside the 7-day window at the arrival)
    -2        browse sku-2, later sku-3
    0         associate at S1                     fires: store S1, skus [sku-3, sku-2]
    0 + 1 h   portal_login at S1 (same visit)     nothing new (same arrival, same trigger id)
"""

from __future__ import annotations

from pipeline.rules.arrival import Arrival
from pipeline.rules.params import Param, days_ms
from pipeline.rules.state import PersonState
from pipeline.rules.trigger import MARKETING, Trigger
from pipeline.visits import Visit


class BrowseThenVisit:
    TYPE = "browse_then_visit"
    KIND = MARKETING
    PAYLOAD_RECORD = "o2o.BrowseThenVisitPayload"
    PARAMS = {
        "window_days": Param("number", 7, "how far back (days) a browse counts", minimum=0, above=True),
        "max_skus": Param("int", 5, "most skus in the payload, most recent first", minimum=1),
    }

    def __init__(self, spec) -> None:  # spec: config.RuleSpec
        self.name = spec.name
        self.window_ms = days_ms(spec.params["window_days"])
        self.max_skus = spec.params["max_skus"]

    def on_arrival(self, person_id: str, person: PersonState, visit: Visit, arrival: Arrival) -> Trigger | None:
        skus = person.skus_browsed(arrival.at - self.window_ms, arrival.at, self.max_skus)
        if not skus:
            return None
        return Trigger.build(self, person_id, visit.store_id, arrival.at, arrival.at, (arrival.event_id,),
                             {"store_id": visit.store_id, "skus": skus, "arrival": arrival.how,
                              "visit_id": visit.visit_id})
