"""Marketing controls: consent, complaint suppression, cooldown, daily cap, quiet hours.

Applied, in this order, to every firing of a marketing rule; service rules (complaint_recovery,
store_complaint_spike) skip them all. Each control is judged on the firing's `fired_at` (event
time) and, for days and quiet hours, in the time zone of the firing's store (`store_timezones`,
else `default_timezone`; a firing without a store uses the default).

    control      suppressed when                                           edge
    consent      the person's latest consent_marketing (by event time)     unknown (never sent) allows
                 is false
    complaint    a complaint at c with fired_at < c + suppress period      at exactly c + period: allowed;
                 (a complaint processed after the firing's time counts     the period is the longest
                 too: marketing right after a complaint is what to avoid)  suppress_marketing_days
    cooldown     the same rule published for the person at f with          at exactly f + cooldown: allowed
                 |fired_at - f| < cooldown
    daily_cap    daily_cap marketing triggers already published for the    counted per local calendar day
                 person on fired_at's local day
    quiet_hours  start <= local time < end (wrapping midnight when         22:00 is quiet, 08:00 is not
                 start > end)

In quiet hours, mode `drop` suppresses the firing; mode `hold` keeps it on a timer and re-decides
it at the window opening (the next local `end`), where it is published with fired_at = opening if
the other controls still allow it then (consent may have been withdrawn overnight).

Worked example, defaults (cooldown 24 h, cap 3, quiet 22:00-08:00 hold, Asia/Shanghai):

    fired_at (local)   rule               outcome
    Mon 10:00          browse_then_visit  published
    Mon 15:00          browse_then_visit  suppressed: cooldown (5 h < 24 h)
    Mon 16:00          abandoned_browse   published (2 today)
    Mon 23:30          share_invite       held until Tue 08:00, then published (Tue: 1)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pipeline.rules.state import PersonState
from pipeline.rules.trigger import COMPLAINT, CONSENT, COOLDOWN, DAILY_CAP, Trigger


class MarketingControls:
    """The `controls:` section of the rules file, compiled (see `config.ControlsConfig`)."""

    def __init__(self, config, complaint_suppression_ms: int) -> None:  # config: ControlsConfig
        self.cooldown_ms = config.cooldown_ms
        self.daily_cap = config.daily_cap
        self.quiet = config.quiet_hours
        self.complaint_suppression_ms = complaint_suppression_ms
        self.default_zone = ZoneInfo(config.default_timezone)
        self._zones = {store: ZoneInfo(name) for store, name in config.store_timezones.items()}
        self._offsets: dict[tuple[ZoneInfo, int], int] = {}  # (zone, quarter hour) -> UTC offset ms

    def zone(self, store_id: str | None) -> ZoneInfo:
        return self._zones.get(store_id, self.default_zone) if store_id else self.default_zone

    def local(self, ms: int, store_id: str | None) -> datetime:
        return datetime.fromtimestamp(ms / 1000, self.zone(store_id))

    def local_ms(self, ms: int, store_id: str | None) -> int:
        """`ms` shifted by the store zone's UTC offset at that instant (epoch ms of local wall time).

        Offsets are cached per zone and quarter hour (UTC offsets change on quarter-hour
        boundaries), so the controls do not build a datetime per firing."""
        zone = self.zone(store_id)
        key = (zone, ms // _QUARTER_HOUR_MS)
        offset = self._offsets.get(key)
        if offset is None:
            if len(self._offsets) > 100_000:
                self._offsets.clear()
            delta = datetime.fromtimestamp(ms / 1000, zone).utcoffset()
            offset = self._offsets[key] = (delta.days * 86_400 + delta.seconds) * 1000
        return ms + offset

    def day(self, ms: int, store_id: str | None) -> int:
        """The local calendar day of `ms` (days since 1970-01-01 local): the daily cap's key."""
        return self.local_ms(ms, store_id) // _DAY_MS

    # --- the checks, in order ---------------------------------------------------------------------

    def refusal(self, person: PersonState, trigger: Trigger, day: int | None = None) -> str | None:
        """The reason this marketing firing may not be published now, or None (quiet hours aside).
        day: `self.day(trigger.fired_at, trigger.store_id)` when the caller has it."""
        at = trigger.fired_at
        if person.consent is False:
            return CONSENT
        if self.complaint_suppression_ms and at < person.complaint_at + self.complaint_suppression_ms:
            return COMPLAINT
        last = person.last_fired.get(trigger.rule) if person.last_fired else None
        if last is not None and abs(at - last) < self.cooldown_ms:
            return COOLDOWN
        if self.daily_cap is not None and person.daily:
            if day is None:
                day = self.day(at, trigger.store_id)
            if person.daily.get(day, 0) >= self.daily_cap:
                return DAILY_CAP
        return None

    def quiet_until(self, ms: int, store_id: str | None, local_ms: int | None = None) -> int | None:
        """The window opening (epoch ms) when `ms` falls in quiet hours at the store, else None.
        local_ms: `self.local_ms(ms, store_id)` when the caller has it."""
        quiet = self.quiet
        if quiet is None:
            return None
        if local_ms is None:
            local_ms = self.local_ms(ms, store_id)
        minute = local_ms % _DAY_MS // 60_000
        start, end = quiet.start_minute, quiet.end_minute
        inside = (start <= minute or minute < end) if start > end else (start <= minute < end)
        if not inside:
            return None
        local = self.local(ms, store_id)
        opening = local.replace(hour=end // 60, minute=end % 60, second=0, microsecond=0)
        if opening <= local:
            opening = datetime.combine(local.date() + timedelta(days=1), opening.timetz())
        return int(opening.timestamp()) * 1000

    def record(self, person: PersonState, trigger: Trigger, day: int | None = None) -> None:
        """Count a published marketing trigger for cooldown and the daily cap."""
        if person.last_fired is None:
            person.last_fired = {}
        last = person.last_fired.get(trigger.rule)
        if last is None or trigger.fired_at > last:
            person.last_fired[trigger.rule] = trigger.fired_at
        if self.daily_cap is not None:
            if person.daily is None:
                person.daily = {}
            if day is None:
                day = self.day(trigger.fired_at, trigger.store_id)
            person.daily[day] = person.daily.get(day, 0) + 1
            if len(person.daily) > 3:  # only today's (and, late, yesterday's) count can still matter
                person.daily = {d: n for d, n in person.daily.items() if d >= day - 2}


_DAY_MS = 86_400_000
_QUARTER_HOUR_MS = 900_000
