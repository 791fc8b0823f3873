"""complaint_recovery: any complaint -> immediate service alert; marketing to the person pauses.

A service rule: it fires on every complaint event (cause: that complaint), whatever the consent,
cooldown, daily cap or hour. Payload: store, severity, category, complaint and order ids. The
complaint also suppresses every marketing rule for the person for `suppress_marketing_days`
(see `controls.py`; with several instances, the longest period applies).

    t       event                   result
    Mon 10  complaint, severity high, store S1, order o-9   fires now (service alert)
    Tue 10  arrival at S1 after browsing                   browse_then_visit suppressed: complaint
    Mon+7d 10:00                                            marketing allowed again
"""

from __future__ import annotations

from typing import Any

from pipeline.rules.params import Param, days_ms
from pipeline.rules.trigger import SERVICE, Trigger


class ComplaintRecovery:
    TYPE = "complaint_recovery"
    KIND = SERVICE
    PAYLOAD_RECORD = "o2o.ComplaintRecoveryPayload"
    PARAMS = {
        "suppress_marketing_days": Param("number", 7, "days after a complaint without marketing to the person",
                                         minimum=0),
    }

    def __init__(self, spec) -> None:
        self.name = spec.name
        self.suppress_ms = days_ms(spec.params["suppress_marketing_days"])

    def on_complaint(self, person_id: str, event: dict[str, Any]) -> Trigger:
        t = event["occurred_at"]
        return Trigger.build(self, person_id, event.get("store_id"), t, t, (event["event_id"],),
                             {"complaint_id": event.get("complaint_id"), "category": event.get("category"),
                              "severity": event.get("severity"), "order_id": event.get("order_id"),
                              "store_id": event.get("store_id"), "channel": event.get("channel")})
