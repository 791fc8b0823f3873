"""lapsed_member: a member with no store visit and no purchase for `days` days -> win-back offer.

An aggregate rule: a scheduled task runs its SQL on ClickHouse and hands each result row to
`RuleEngine.on_aggregate`, which calls `build_trigger` and applies the marketing controls. Row:

    {"person_id": "m:42", "member_id": "42", "last_activity_at": ms, "last_event_id": "pos-77",
     "evaluated_at": ms, "store_id": "S1" | None}      # store of the last activity, if any

Cause: the last visit or purchase event, so one lapse is one trigger id however often the task
runs; a new visit or purchase followed by a new lapse is a new id. event_time is the moment the
member became lapsed (last activity + days); fired_at is `evaluated_at`, the scan's time.
"""

from __future__ import annotations

from typing import Any

from pipeline.rules.params import Param, days_ms, require_row_fields
from pipeline.rules.trigger import MARKETING, Trigger

ROW_FIELDS = ("person_id", "member_id", "last_activity_at", "last_event_id", "evaluated_at")


class LapsedMember:
    TYPE = "lapsed_member"
    KIND = MARKETING
    PAYLOAD_RECORD = "o2o.LapsedMemberPayload"
    AGGREGATE = True
    PARAMS = {
        "days": Param("number", 30, "days without a store visit or a purchase", minimum=0, above=True),
        "every_h": Param("number", 24, "how often the scheduled task runs the query (hours)", minimum=0,
                         above=True),
    }

    def __init__(self, spec) -> None:
        self.name = spec.name
        self.lapse_ms = days_ms(spec.params["days"])
        self.every_ms = round(spec.params["every_h"] * 3_600_000)

    def build_trigger(self, row: dict[str, Any]) -> Trigger | None:
        """The win-back trigger for one result row; None when the member is not lapsed at evaluated_at."""
        require_row_fields(self.name, row, ROW_FIELDS)
        last, now = row["last_activity_at"], row["evaluated_at"]
        if now - last < self.lapse_ms:
            return None
        return Trigger.build(self, row["person_id"], row.get("store_id"), last + self.lapse_ms, now,
                             (row["last_event_id"],),
                             {"member_id": row["member_id"], "last_activity_at": last,
                              "days_inactive": (now - last) // 86_400_000},
                             member_id=row["member_id"])
