"""share_invite: `delay_h` after a paid purchase, if the person has neither shared nor complained
since -> invite to share the experience for `points`.

A paid purchase at p starts a timer due at p + delay. The timer fires when the engine's watermark
(largest event time seen, or the time the agent passes to `RuleEngine.advance` on a quiet stream)
reaches the due time; it is cancelled if the person shared or complained at any time in
[p, due] (both ends included). Timers are engine state: they are in `snapshot()` and in the
changelog, so a restart in the middle of a pending invite fires it once, at the same due time,
with the same trigger id (cause: the purchase event).

    t      event                        result
    10:00  purchase paid o-1            timer due 12:00
    11:59  browse                       -
    12:00  any event (watermark 12:00)  fires: order o-1, fired_at 12:00
    ----
    10:00  purchase paid o-2            timer due 12:00
    12:00  share                        cancelled (shared at the due time, inclusive)

A share arriving after the watermark passed the due time is too late to cancel.
"""

from __future__ import annotations

from typing import Any

from pipeline.rules.params import Param, hours_ms
from pipeline.rules.state import PersonState
from pipeline.rules.trigger import MARKETING, Trigger


class ShareInvite:
    TYPE = "share_invite"
    KIND = MARKETING
    PAYLOAD_RECORD = "o2o.ShareInvitePayload"
    PARAMS = {
        "delay_h": Param("number", 2, "hours after the paid purchase", minimum=0, above=True),
        "points": Param("int", 100, "points offered for sharing (payload only)", minimum=0),
    }

    def __init__(self, spec) -> None:
        self.name = spec.name
        self.delay_ms = hours_ms(spec.params["delay_h"])
        self.points = spec.params["points"]

    def on_paid_purchase(self, person_id: str, event: dict[str, Any]) -> Trigger:
        """The invite this purchase will fire at its due time (the engine keeps it on a timer)."""
        t = event["occurred_at"]
        return Trigger.build(self, person_id, event.get("store_id"), t, t + self.delay_ms, (event["event_id"],),
                             {"order_id": event.get("order_id") or "", "amount_cents": event.get("amount_cents") or 0,
                              "currency": event.get("currency"), "purchased_at": t, "points": self.points})

    def still_due(self, person: PersonState, invite: Trigger) -> bool:
        """False when the person shared or complained between the purchase and the due time."""
        return not person.touched_between(invite.event_time, invite.fired_at)
