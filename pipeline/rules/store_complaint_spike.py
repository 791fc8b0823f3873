"""store_complaint_spike: `threshold` or more complaints at one store within `window_min` -> alert.

An aggregate rule: a scheduled task runs its SQL on ClickHouse (it comes with the warehouse) and
hands each result row to `RuleEngine.on_aggregate`, which calls `build_trigger`. A service rule:
no marketing controls. Row, one per store over the threshold:

    {"store_id": "S1", "window_start": ms, "window_end": ms, "complaints": 6,
     "complaint_event_ids": ["c-1", "c-2", ...]}        # in event-time order

Cause: the first `threshold` complaints of the window, the ones that made the spike. While they
stay in the sliding window every run yields the same trigger id (one alert, deduplicated); when
they slide out and the count is still over the threshold, newer complaints make a new alert.
"""

from __future__ import annotations

from typing import Any

from pipeline.rules.params import Param, minutes_ms, require_row_fields
from pipeline.rules.trigger import SERVICE, Trigger

ROW_FIELDS = ("store_id", "window_start", "window_end", "complaints", "complaint_event_ids")


class StoreComplaintSpike:
    TYPE = "store_complaint_spike"
    KIND = SERVICE
    PAYLOAD_RECORD = "o2o.StoreComplaintSpikePayload"
    AGGREGATE = True
    PARAMS = {
        "window_min": Param("number", 15, "sliding window (minutes) the complaints are counted over",
                            minimum=0, above=True),
        "threshold": Param("int", 5, "complaints at one store within the window that make a spike", minimum=1),
        "every_min": Param("number", 1, "how often the scheduled task runs the query (minutes)", minimum=0,
                           above=True),
    }

    def __init__(self, spec) -> None:
        self.name = spec.name
        self.window_ms = minutes_ms(spec.params["window_min"])
        self.threshold = spec.params["threshold"]
        self.every_ms = minutes_ms(spec.params["every_min"])

    def build_trigger(self, row: dict[str, Any]) -> Trigger | None:
        """The alert for one result row; None when the row is under the threshold."""
        require_row_fields(self.name, row, ROW_FIELDS)
        ids = list(row["complaint_event_ids"])
        if row["complaints"] < self.threshold or len(ids) < self.threshold:
            return None
        end = row["window_end"]
        return Trigger.build(self, None, row["store_id"], end, end, ids[: self.threshold],
                             {"store_id": row["store_id"], "complaints": row["complaints"],
                              "threshold": self.threshold, "window_start": row["window_start"], "window_end": end})

