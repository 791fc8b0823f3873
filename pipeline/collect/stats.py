"""Counts since the collector started, served by `GET /v1/stats`.

    {"started_at": "2026-11-22T02:00:00.000Z",
     "accepted": {"<source>": {"<event type>": n}},
     "rejected": {"<source>": {"<event type>": {"<reason>": n}}},
     "unknown_stores": {"skipped": n, "networks": {"<network id>": n}, "aps": {"<ap mac>": n}},
     "requests": {"<endpoint>": {"<status>": n}}}

Accepted means acknowledged by the broker (the 202 guarantee). Rejected events are counted under
their event type, or `unknown` when it is missing or not a type; reasons are the dead-letter codes.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipeline.collect.sightings import Translation
from pipeline.events import format_occurred_at


class CollectorStats:
    def __init__(self, started_at_ms: int) -> None:
        self.started_at_ms = started_at_ms
        self.accepted: Counter = Counter()        # (source, type)
        self.rejected: Counter = Counter()        # (source, type, reason)
        self.unknown_networks: Counter = Counter()
        self.unknown_aps: Counter = Counter()
        self.unknown_skipped = 0
        self.requests: Counter = Counter()        # (endpoint, status)

    def count_accepted(self, source: str, counts: Counter) -> None:
        for event_type, n in counts.items():
            self.accepted[(source, event_type)] += n

    def count_rejected(self, source: str, event_type: str, reason: str) -> None:
        self.rejected[(source, event_type, reason)] += 1

    def count_unknown(self, translation: Translation) -> None:
        self.unknown_skipped += translation.unknown_store
        self.unknown_networks.update(translation.unknown_networks)
        self.unknown_aps.update(translation.unknown_aps)

    def count_request(self, endpoint: str, status: int) -> None:
        self.requests[(endpoint, status)] += 1

    def to_dict(self) -> dict[str, Any]:
        accepted: dict[str, dict[str, int]] = {}
        for (source, event_type), n in sorted(self.accepted.items()):
            accepted.setdefault(source, {})[event_type] = n
        rejected: dict[str, dict[str, dict[str, int]]] = {}
        for (source, event_type, reason), n in sorted(self.rejected.items()):
            rejected.setdefault(source, {}).setdefault(event_type, {})[reason] = n
        requests: dict[str, dict[str, int]] = {}
        for (endpoint, status), n in sorted(self.requests.items()):
            requests.setdefault(endpoint, {})[str(status)] = n
        return {
            "started_at": format_occurred_at(self.started_at_ms),
            "accepted": accepted,
            "rejected": rejected,
            "unknown_stores": {"skipped": self.unknown_skipped, "networks": dict(self.unknown_networks),
                               "aps": dict(self.unknown_aps)},
            "requests": requests,
        }
