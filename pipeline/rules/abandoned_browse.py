"""abandoned_browse: a session closed with >= `min_browses` browses of one sku and no paid purchase
-> retarget with that sku.

Fires when the journey reports the session closed (final). With several qualifying skus, the one
browsed most (ties: the most recently browsed, then the smallest sku). Cause: those browse events
of the sku, so the id is the same on a replay. event_time is the session's end; fired_at is the
end plus the inactivity gap (the moment the session was over).

    session (gap 30 min)                        result
    browse sku-1 x3, browse sku-2               fires: sku-1, browse_count 3
    browse sku-1 x3, purchase paid              nothing (bought)
    browse sku-1 x2, browse sku-2 x2            nothing (min_browses 3 not reached on one sku)
"""

from __future__ import annotations

from collections import Counter

from pipeline.rules.params import Param
from pipeline.rules.trigger import MARKETING, Trigger
from pipeline.sessions import Session


class AbandonedBrowse:
    TYPE = "abandoned_browse"
    KIND = MARKETING
    PAYLOAD_RECORD = "o2o.AbandonedBrowsePayload"
    PARAMS = {
        "min_browses": Param("int", 3, "browse events on one sku within the session", minimum=1),
    }

    def __init__(self, spec) -> None:
        self.name = spec.name
        self.min_browses = spec.params["min_browses"]

    def on_session_closed(self, session: Session, browses: list[tuple[int, str, str]], paid: bool,
                          gap_ms: int) -> Trigger | None:
        """browses: the session's browses with a sku, [(t, event_id, sku)]; paid: it had a paid purchase."""
        if paid or len(browses) < self.min_browses:
            return None
        skus = [sku for _, _, sku in browses]
        if len(skus) - len(set(skus)) < self.min_browses - 1:
            return None  # the usual case: no sku repeats often enough (a sku seen K times repeats K-1)
        counts = Counter(skus)
        top = max(counts.values())
        if top < self.min_browses:
            return None  # the usual case: no sku browsed often enough
        last = {sku: t for t, _, sku in sorted(browses)}
        sku = min((-n, -last[s], s) for s, n in counts.items() if n == top)[2]
        hits = [event_id for _, event_id, s in browses if s == sku]
        return Trigger.build(self, session.person_id, None, session.end, session.end + gap_ms, hits,
                             {"sku": sku, "browse_count": len(hits), "session_id": session.session_id})
