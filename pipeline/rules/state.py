"""What the rules remember about a person, kept small and in event time.

One `PersonState` per person id, holding the facts every rule reads (so several rule instances of
one type share them) and the controls' bookkeeping:

    browsed      [t, sku, t, sku, ...] recent      browse_then_visit (the latest browses, capped)
    log          [t, event_id, sku | None, ...]    abandoned_browse: browses with a sku and paid
                                                   purchases (sku None) of open sessions
    revenue      lifetime paid revenue (cents)     vip_arrival (paid adds, refunded subtracts)
    recent_paid  [[t, cents]] of recent changes    vip_arrival: revenue as of an arrival's time
    tiers        [[t, tier]] latest few            vip_arrival: tier as of an arrival's time
    consent      latest consent_marketing, time    controls: consent
    complaint_at latest complaint time             controls: complaint suppression
    touches      recent share / complaint times    share_invite: "neither shared nor complained since"
    last_fired   rule -> fired_at of last publish  controls: cooldown
    daily        local day number -> count         controls: daily cap
    timers       ids of pending timers             so they follow a person merge

A person merge (`absorb`) combines two states as if one person had seen both streams. Memory is
bounded two ways: every collection of an active person is capped (browses, touches, tiers, recent
revenue, days; the session log empties as sessions close and drops what closed sessions left behind
once it holds 64 entries), and once a person has been idle
longer than any rule looks back, `expire` drops all but the facts that must outlive activity:
lifetime revenue, tier and a refused consent.
"""

from __future__ import annotations

import bisect
from copy import deepcopy
from typing import Any

_NEVER = -(1 << 62)
TOUCHES_KEPT = 8  # share/complaint times kept; share_invite reads those within its delay
TIERS_KEPT = 4
RECENT_PAID_KEPT = 16
SETTLED = _NEVER + 1  # `seen` of an idle person already expired: nothing left that can expire


class PersonState:
    __slots__ = ("seen", "browsed", "log", "log_until", "revenue", "recent_paid", "tiers", "consent", "consent_at",
                 "complaint_at", "touches", "last_fired", "daily", "timers")

    def __init__(self, seen: int = _NEVER) -> None:
        self.seen = seen  # event time of the person's latest event: idle persons are expired
        self.browsed: list | None = None  # flat [t, sku, ...] in arrival order: one list, no tuples
        self.log: list | None = None  # flat [t, event_id, sku, ...] in arrival order: one list, no tuples
        self.log_until = _NEVER  # the latest time in the log (an upper bound once entries left)
        self.revenue = 0
        self.recent_paid: list[list[int]] | None = None  # [[t, cents], ...]: lists, JSON-shaped
        self.tiers: list[list] | None = None              # [[t, tier], ...] sorted
        self.consent: bool | None = None
        self.consent_at = _NEVER
        self.complaint_at = _NEVER
        self.touches: list[int] | None = None
        self.last_fired: dict[str, int] | None = None
        self.daily: dict[int, int] | None = None
        self.timers: list[str] | None = None

    # --- facts ---------------------------------------------------------------------------------

    def note_browse(self, sku: str, t: int, cap: int) -> None:
        """Remember a browse: the latest `cap` to 2 x `cap` browses are kept (trimmed in steps)."""
        browsed = self.browsed
        if browsed is None:
            self.browsed = [t, sku]
            return
        browsed.append(t)
        browsed.append(sku)
        if len(browsed) > 4 * cap:
            del browsed[:-2 * cap]

    def skus_browsed(self, low: int, high: int, limit: int) -> list[str]:
        """Distinct skus browsed in [low, high], most recent first (ties by sku), at most `limit`."""
        browsed = self.browsed
        if not browsed:
            return []
        hits = sorted((-browsed[i], browsed[i + 1]) for i in range(0, len(browsed), 2) if low <= browsed[i] <= high)
        return list(dict.fromkeys(sku for _, sku in hits))[:limit]

    def note_revenue(self, t: int, cents: int, keep_recent: bool) -> None:
        """A paid purchase (cents > 0) or a refund (cents < 0); lifetime revenue never goes below 0."""
        cents = max(cents, -self.revenue)
        self.revenue += cents
        if keep_recent and cents:
            if self.recent_paid is None:
                self.recent_paid = [[t, cents]]
            else:
                self.recent_paid.append([t, cents])
                if len(self.recent_paid) > RECENT_PAID_KEPT:
                    del self.recent_paid[:-RECENT_PAID_KEPT]  # folded into the lifetime total for good

    def revenue_at(self, t: int) -> int:
        """Lifetime revenue as it was at event time t (changes older than the expiry horizon count)."""
        later = sum(cents for at, cents in self.recent_paid if at > t) if self.recent_paid else 0
        return self.revenue - later

    def note_tier(self, t: int, tier: str) -> None:
        """Keeps tier *changes* only (most events of a member repeat its tier), the latest few."""
        tiers = self.tiers
        if tiers is None:
            self.tiers = [[t, tier]]
            return
        i = bisect.bisect_right(tiers, [t, "\U0010ffff"])
        if i and tiers[i - 1][1] == tier:
            return  # already in effect at t
        tiers.insert(i, [t, tier])
        if i + 1 < len(tiers) and tiers[i + 1][1] == tier:
            del tiers[i + 1]  # the same tier, now known from earlier
        if len(tiers) > TIERS_KEPT:
            del tiers[0]

    @property
    def tier(self) -> str | None:
        return self.tiers[-1][1] if self.tiers else None

    def tier_at(self, t: int) -> str | None:
        """The latest tier property sent at or before event time t."""
        if not self.tiers:
            return None
        i = bisect.bisect_right(self.tiers, [t, "\U0010ffff"])
        return self.tiers[i - 1][1] if i else None

    def note_touch(self, t: int) -> None:
        touches = self.touches
        if touches is None:
            self.touches = [t]
            return
        bisect.insort(touches, t)
        if len(touches) > TOUCHES_KEPT:
            del touches[0]

    def touched_between(self, low: int, high: int) -> bool:
        touches = self.touches
        if not touches:
            return False
        i = bisect.bisect_left(touches, low)
        return i < len(touches) and touches[i] <= high

    def add_timer(self, timer_id: str) -> None:
        if self.timers is None:
            self.timers = [timer_id]
        elif timer_id not in self.timers:
            self.timers.append(timer_id)

    def drop_timer(self, timer_id: str) -> None:
        if self.timers and timer_id in self.timers:
            self.timers.remove(timer_id)
            if not self.timers:
                self.timers = None

    # --- merges and expiry -----------------------------------------------------------------------

    def absorb(self, other: PersonState, browse_cap: int) -> None:
        """Fold `other` (a person merged into this one) in, as if one person had both histories."""
        self.seen = max(self.seen, other.seen)
        if other.browsed:
            merged = sorted(zip(other.browsed[::2] + (self.browsed or [])[::2],
                                other.browsed[1::2] + (self.browsed or [])[1::2]))[-2 * browse_cap:]
            self.browsed = [value for entry in merged for value in entry]
        if other.log:
            self.log = (self.log or []) + other.log
            self.log_until = max(self.log_until, other.log_until)
        self.revenue += other.revenue
        if other.recent_paid:
            self.recent_paid = sorted((self.recent_paid or []) + other.recent_paid)[-RECENT_PAID_KEPT:]
        for t, tier in other.tiers or ():
            self.note_tier(t, tier)
        if other.consent_at > self.consent_at:
            self.consent, self.consent_at = other.consent, other.consent_at
        self.complaint_at = max(self.complaint_at, other.complaint_at)
        for t in other.touches or ():
            self.note_touch(t)
        if other.last_fired:
            mine = self.last_fired = self.last_fired or {}
            for rule, t in other.last_fired.items():
                mine[rule] = max(mine.get(rule, t), t)
        if other.daily:
            days = self.daily = self.daily or {}
            for day, n in other.daily.items():
                days[day] = days.get(day, 0) + n
        for timer_id in other.timers or ():
            self.add_timer(timer_id)

    def expire(self, horizons: Horizons, watermark: int, today: int) -> tuple[bool, bool]:
        """Drop what no rule can read any more. Returns (changed, empty): empty when nothing worth
        keeping is left and the person can be forgotten."""
        changed = False
        if self.browsed:
            low = watermark - horizons.browse_ms
            if min(self.browsed[::2]) < low:
                kept = [(t, sku) for t, sku in zip(self.browsed[::2], self.browsed[1::2]) if t >= low]
                self.browsed = [value for entry in kept for value in entry] or None
                changed = True
        if self.log:
            low = watermark - horizons.log_ms
            if min(self.log[::3]) < low:
                self.log = keep_log_entries(self.log, lambda t: t >= low) or None
                changed = True
        if self.recent_paid and self.recent_paid[0][0] < watermark - horizons.log_ms:
            low = watermark - horizons.log_ms
            self.recent_paid = [entry for entry in self.recent_paid if entry[0] >= low] or None
            changed = True
        if self.touches and self.touches[-1] < watermark - horizons.touch_ms:
            self.touches, changed = None, True
        if self.last_fired:
            low = watermark - horizons.cooldown_ms
            if any(t < low for t in self.last_fired.values()):
                self.last_fired = {rule: t for rule, t in self.last_fired.items() if t >= low} or None
                changed = True
        if self.daily:
            # Days of other zones may lie a day either side of the default zone's today.
            if any(day < today - 2 for day in self.daily):
                self.daily = {day: n for day, n in self.daily.items() if day >= today - 2} or None
                changed = True
        if self.complaint_at != _NEVER and self.complaint_at < watermark - horizons.complaint_ms:
            self.complaint_at, changed = _NEVER, True
        if self.consent is True and self.consent_at < watermark - horizons.lateness_ms:
            # A late "false" older than this can no longer arrive; unknown then means the same as true.
            self.consent, self.consent_at, changed = None, _NEVER, True
        empty = (self.browsed is None and self.log is None and self.touches is None and self.last_fired is None
                 and self.daily is None and self.timers is None and self.revenue == 0 and self.tiers is None
                 and self.consent is None and self.complaint_at == _NEVER)
        return changed, empty

    # --- plain data ---------------------------------------------------------------------------------

    def to_plain(self, copy: bool = False) -> list[Any]:
        """JSON-safe positional form (PLAIN_FIELDS order; None for empty). Without `copy` it shares
        lists with the live state, as a changelog flush needs it: encode it before the next batch."""
        daily = [x for day, n in self.daily.items() for x in (day, n)] if self.daily else None
        plain = [PLAIN_VERSION, self.seen, self.browsed, self.log, self.revenue, self.recent_paid, self.tiers,
                 self.consent, self.consent_at, self.complaint_at, self.touches, self.last_fired, daily, self.timers]
        if copy:
            plain = [deepcopy(value) if isinstance(value, (list, dict)) else value for value in plain]
        return plain

    @classmethod
    def from_plain(cls, plain: list[Any]) -> PersonState:
        if not isinstance(plain, list) or not plain or plain[0] != PLAIN_VERSION:
            raise ValueError(f"not a version {PLAIN_VERSION} person state: {plain!r:.80}")
        (_, seen, browsed, log, revenue, recent_paid, tiers, consent, consent_at, complaint_at, touches,
         last_fired, daily, timers) = plain
        state = cls(seen)
        state.browsed = list(browsed) if browsed else None
        state.log = list(log) if log else None
        if state.log:
            state.log_until = max(state.log[::3])
        state.revenue = revenue
        state.recent_paid = [list(entry) for entry in recent_paid] if recent_paid else None
        state.tiers = [list(entry) for entry in tiers] if tiers else None
        state.consent, state.consent_at, state.complaint_at = consent, consent_at, complaint_at
        state.touches = list(touches) if touches else None
        state.last_fired = dict(last_fired) if last_fired else None
        state.daily = {daily[i]: daily[i + 1] for i in range(0, len(daily), 2)} if daily else None
        state.timers = list(timers) if timers else None
        return state


PLAIN_VERSION = 1
PLAIN_FIELDS = ("version", "seen", "browsed", "log", "revenue", "recent_paid", "tiers", "consent", "consent_at",
                "complaint_at", "touches", "last_fired", "daily", "timers")


def keep_log_entries(log: list, keep) -> list:
    """The entries [t, event_id, sku] of a flat session log whose time passes `keep(t)`."""
    out: list = []
    for i in range(0, len(log), 3):
        if keep(log[i]):
            out += log[i:i + 3]
    return out


class Horizons:
    """How long (event time, ms) each kind of fact can still matter; derived from the rules in use."""

    __slots__ = ("browse_ms", "log_ms", "touch_ms", "cooldown_ms", "complaint_ms", "lateness_ms")

    def __init__(self, browse_ms: int, log_ms: int, touch_ms: int, cooldown_ms: int, complaint_ms: int,
                 lateness_ms: int) -> None:
        self.browse_ms, self.log_ms, self.touch_ms = browse_ms, log_ms, touch_ms
        self.cooldown_ms, self.complaint_ms, self.lateness_ms = cooldown_ms, complaint_ms, lateness_ms
