"""vip_arrival: a VIP member arrives at a store -> staff alert with the store and the member.

A person is a VIP when it is a member (person id `m:<member_id>`) and its lifetime paid revenue
seen by the pipeline reaches `min_revenue_cents`, or its latest `properties[tier_property]` is one
of `tiers`, both as they were at the arrival's event time (a purchase in the store after the
arrival does not make it a VIP arrival). Fires on the *arrival* (see `arrival.py`); cause: the
arrival check-in. A marketing rule: the controls apply.

    event                                               result
    purchase paid 600,000 cents (m:42)                  revenue 600,000 >= 500,000
    associate at S1 (m:42)                              fires: store S1, member 42
    associate at S2 (d:ipad, anonymous, same revenue)   nothing: not a member
"""

from __future__ import annotations

from pipeline.rules.arrival import Arrival
from pipeline.rules.params import Param
from pipeline.rules.state import PersonState
from pipeline.rules.trigger import MARKETING, Trigger, member_of
from pipeline.visits import Visit


class VipArrival:
    TYPE = "vip_arrival"
    KIND = MARKETING
    PAYLOAD_RECORD = "o2o.VipArrivalPayload"
    PARAMS = {
        "min_revenue_cents": Param("int", 500_000, "lifetime paid revenue (cents) that makes a VIP; null: tier only",
                                   minimum=0, nullable=True),
        "tier_property": Param("str", "tier", "event property holding the member tier; null: revenue only",
                               nullable=True),
        "tiers": Param("str_list", ["gold", "platinum"], "tier values that make a VIP"),
    }

    def __init__(self, spec) -> None:
        self.name = spec.name
        self.min_revenue = spec.params["min_revenue_cents"]
        self.tier_property = spec.params["tier_property"]
        self.tiers = frozenset(spec.params["tiers"])

    def is_vip(self, person: PersonState, at: int) -> bool:
        if self.min_revenue is not None and person.revenue_at(at) >= self.min_revenue:
            return True
        return self.tier_property is not None and person.tier_at(at) in self.tiers

    def on_arrival(self, person_id: str, person: PersonState, visit: Visit, arrival: Arrival) -> Trigger | None:
        member_id = member_of(person_id)
        if member_id is None or not self.is_vip(person, arrival.at):
            return None
        return Trigger.build(self, person_id, visit.store_id, arrival.at, arrival.at, (arrival.event_id,),
                             {"store_id": visit.store_id, "member_id": member_id,
                              "lifetime_revenue_cents": person.revenue_at(arrival.at),
                              "tier": person.tier_at(arrival.at),
                              "arrival": arrival.how, "visit_id": visit.visit_id})
