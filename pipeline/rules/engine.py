"""RuleEngine: the trigger rules over the journey stage's output, in event time. Pure: no I/O, no clock.

Per batch the caller hands over the events as resolved to persons, in arrival order, and the
`JourneyBatch` the journey processor returned for them; it gets back a `RuleOutput`: triggers to
publish, suppressed firings with their reason, firings held over quiet hours.

    engine = RuleEngine(load_rules(path), journey_policy)
    out = engine.on_batch(pairs, journey_batch)      # pairs: [(person_id, event)], arrival order
    out = engine.advance(watermark_ms)               # a quiet stream: due timers fire
    publish(out.triggers); count(out.suppressed)

Where each rule fires (one module per type, each with a worked example):

    rule type              fires on                                    where in this module
    complaint_recovery     a complaint event                           on_batch, per event
    share_invite           a paid purchase sets a timer; it fires when _schedule, then _fire_timers
                           the watermark reaches the due time
    browse_then_visit,     a visit's arrival (arrival.py), judged at   _arrivals, then on_batch at
      vip_arrival          the arrival check-in's place in the stream  the check-in (_judge_arrival)
    abandoned_browse       a session the batch closed                  _on_closed_sessions
    store_complaint_spike, a result row of their ClickHouse query      on_aggregate
      lapsed_member

Order: for each event, the identity merges it caused are applied first (per-person state follows
the person), then its facts are recorded (browse, revenue, consent, complaint, ...), an arrival
at this check-in is judged with the facts of that moment, and timers due at the new watermark
fire. Complaint alerts are published as they come. The batch's marketing firings are decided at
its end, by fired_at (ties: the cause's time, then the order they arose in), through the controls
(controls.py): with in-order input the decisions do not depend on how the input was batched.
Each firing is decided once: its trigger id is remembered for DECIDED_HORIZON_MS of event time,
so a duplicate cause event, a re-reported visit or a replay after a restart does not fire again
(push services deduplicate on the id beyond that).

Watermark: the largest event time seen, raised by `advance`. Timers (share_invite, held
firings) are engine state with their due time, in `snapshot()` and the changelog: a restart
restores them and they fire once, at the same due time, with the same id.

State: `snapshot()` / `restore()` give and take plain JSON-safe data; `drain_changes()` returns the
(key, value) pairs changed since the last call (None = deleted) for a compacted changelog:
"wm", "sweep", "p:<person_id>" (PersonState.to_plain), "t:<timer_id>" (pending timer),
"d:<trigger_id>" (a decided firing's fired_at). A person is not re-written for a change that only
moves its last-seen time or re-confirms a granted consent (most Wi-Fi check-ins): after a restart
those may be older, which can only make expiry come sooner and a late refusal win. Memory follows
activity: collections per person are capped, and once per SWEEP_EVERY_MS of event time persons
idle longer than any rule looks back are expired (state.py).
"""

from __future__ import annotations

import heapq
from collections import deque
from itertools import count
from typing import Any, Iterable

from pipeline.journey import JourneyBatch, JourneyPolicy
from pipeline.rules.arrival import Arrival, arrival_of
from pipeline.rules.config import RulesConfig, load_rules
from pipeline.rules.controls import MarketingControls
from pipeline.rules.state import SETTLED, Horizons, PersonState, keep_log_entries
from pipeline.rules.trigger import QUIET_HOURS, SERVICE, Held, RuleOutput, Suppressed, Trigger
from pipeline.sessions import Session
from pipeline.visits import Visit

NEVER = 1 << 62
SWEEP_EVERY_MS = 6 * 3_600_000
DAY_MS = 86_400_000
DECIDED_HORIZON_MS = 2 * DAY_MS
SHARE_INVITE, HELD = "share_invite", "held"
LOG_COMPACT_AT = 64  # session log entries of a person before entries of closed sessions are dropped
# A marketing candidate of the batch: a new firing, a share invite come due, or a held firing released.
NEW, DUE, RELEASED = 0, 1, 2


class _Timer:
    """A firing waiting for its due time (= trigger.fired_at): a share invite, or a held firing."""

    __slots__ = ("kind", "trigger")

    def __init__(self, kind: str, trigger: Trigger) -> None:
        self.kind = kind
        self.trigger = trigger

    def to_plain(self) -> dict[str, Any]:
        return {"kind": self.kind, "trigger": self.trigger.to_plain()}

    @classmethod
    def from_plain(cls, plain: dict[str, Any]) -> _Timer:
        return cls(plain["kind"], Trigger.from_plain(plain["trigger"]))

    def key(self) -> tuple[int, int, str]:
        """Heap order: due time, then the cause's time, then the id (never the order timers were
        set, which depends on the batching)."""
        return self.trigger.fired_at, self.trigger.event_time, self.trigger.trigger_id


class RuleEngine:
    def __init__(self, rules: RulesConfig | None = None, journey: JourneyPolicy = JourneyPolicy(),
                 track_changes: bool = False) -> None:
        """rules: the checked rules file (None: the shipped defaults). journey: the journey stage's
        policy (visitor thresholds for arrivals, the session gap, the allowed lateness).
        track_changes: remember what changed for `drain_changes()`."""
        self.config = rules if rules is not None else load_rules()
        self.journey_policy = journey
        compiled = [spec.compile() for spec in self.config.enabled()]
        self.rules: dict[str, Any] = {rule.name: rule for rule in compiled}
        self._arrival_rules = [r for r in compiled if hasattr(r, "on_arrival")]
        self._purchase_rules = [r for r in compiled if hasattr(r, "on_paid_purchase")]
        self._complaint_rules = [r for r in compiled if hasattr(r, "on_complaint")]
        self._session_rules = [r for r in compiled if hasattr(r, "on_session_closed")]
        self._min_browses = min((r.min_browses for r in self._session_rules), default=0)
        suppress_ms = max((r.suppress_ms for r in self._complaint_rules), default=0)
        self.controls = MarketingControls(self.config.controls, suppress_ms)
        windows = [r.window_ms for r in compiled if hasattr(r, "window_ms") and hasattr(r, "on_arrival")]
        # Browses kept per person: four per payload sku, room for repeats of one sku.
        self._browse_cap = 4 * max((r.max_skus for r in compiled if hasattr(r, "max_skus")), default=0)
        self._tier_properties = tuple(sorted({r.tier_property for r in compiled if getattr(r, "tier_property", None)}))
        self._keep_recent_revenue = any(hasattr(r, "min_revenue") for r in compiled)
        sessions = journey.sessions
        lateness = journey.allowed_lateness_ms
        self.horizons = Horizons(
            browse_ms=max(windows, default=0) + lateness,
            log_ms=sessions.max_length_ms + sessions.gap_ms + lateness,
            touch_ms=max((r.delay_ms for r in self._purchase_rules), default=0) + lateness,
            cooldown_ms=self.config.controls.cooldown_ms + lateness,
            complaint_ms=suppress_ms + lateness,
            lateness_ms=lateness)
        h = self.horizons
        self._idle_ms = max(h.browse_ms, h.log_ms, h.touch_ms, h.cooldown_ms, h.complaint_ms, DAY_MS)
        self.track_changes = track_changes
        self.watermark_ms: int | None = None
        self._next_sweep: int | None = None
        self._persons: dict[str, PersonState] = {}
        self._timers: dict[str, _Timer] = {}
        self._heap: list[tuple[int, int, str]] = []   # _Timer.key(): (due, cause time, timer id)
        self._decided: dict[str, int] = {}            # trigger id -> fired_at
        self._decided_order: deque[tuple[int, str]] = deque()  # (fired_at, id), about in time order
        self._merged_into: dict[str, str] = {}        # this batch's merges: a firing follows its person
        self._arrived: dict[str, Arrival] = {}        # open visit id -> its arrival, once found
        self._dirty_persons: set[str] = set()
        self._dirty_timers: set[str] = set()
        self._dirty_decided: set[str] = set()
        self.stats: dict[str, Any] = {"events": 0, "published": {}, "suppressed": {}, "held": 0,
                                      "duplicate_causes": 0, "share_invites_cancelled": 0}

    # --- the hot path --------------------------------------------------------------------------

    def on_batch(self, resolved_events: Iterable[tuple[str, dict[str, Any]]],
                 journey: JourneyBatch | None = None) -> RuleOutput:
        """One batch: (person_id, event) pairs in arrival order, and the JourneyBatch made from them."""
        out = RuleOutput()
        candidates: list[tuple[Trigger, int]] = []
        self._merged_into.clear()
        merges: dict[str, list[Any]] = {}
        late: set[int] = set()
        arrivals: dict[str, tuple[Visit, Arrival]] = {}
        if journey is not None:
            for merge in journey.merges:
                merges.setdefault(merge.event_id, []).append(merge)
            late = {id(late_event.event) for late_event in journey.late}
            if self._arrival_rules:
                arrivals = self._arrivals(journey)
        judged_as: dict[str, str] = {}  # arrival event id -> the person it was judged for in the loop
        persons, heap = self._persons, self._heap
        dirty = self._dirty_persons if self.track_changes else None
        browse_cap, log_sessions = self._browse_cap, bool(self._session_rules)
        purchase_rules, complaint_rules = self._purchase_rules, self._complaint_rules
        tier_properties, keep_revenue = self._tier_properties, self._keep_recent_revenue
        wm = self.watermark_ms if self.watermark_ms is not None else -NEVER
        if not isinstance(resolved_events, list):
            resolved_events = list(resolved_events)
        for person_id, event in resolved_events:
            if merges:
                caused = merges.pop(event["event_id"], None)
                if caused:
                    self._merge(caused)
            t = event["occurred_at"]
            kind = event["event_type"]
            consent = event["consent_marketing"]
            if kind == "wifi_checkin" and consent is None and not event["properties"]:
                # A gateway's check-in: nothing to remember about the person (most are passers-by).
                if arrivals and event["event_id"] in arrivals:
                    visit, arrival = arrivals[event["event_id"]]
                    self._judge_arrival(person_id, self._person(person_id), visit, arrival, candidates)
                    judged_as[arrival.event_id] = person_id
                if t > wm:
                    wm = t
                    if heap and heap[0][0] <= wm:
                        self._fire_timers(wm, candidates)
                continue
            person = persons.get(person_id)
            if person is None:
                person = persons[person_id] = PersonState()
            person.seen = t
            # The changelog leaves out changes that only move `seen` or re-confirm a granted consent.
            changed = kind != "wifi_checkin"
            if consent is not None and t >= person.consent_at:
                if consent is not person.consent or consent is False:
                    changed = True
                person.consent, person.consent_at = consent, t
            if tier_properties:
                properties = event["properties"]
                if properties:
                    for name in tier_properties:
                        value = properties.get(name)
                        if value is not None:
                            person.note_tier(t, value)
                            changed = True
            if kind == "wifi_checkin":  # the most frequent, then browse
                if arrivals and event["event_id"] in arrivals:
                    # Judged here, at the arrival's place in the stream: facts as they were then.
                    visit, arrival = arrivals[event["event_id"]]
                    self._judge_arrival(person_id, person, visit, arrival, candidates)
                    judged_as[arrival.event_id] = person_id
            elif kind == "browse":
                sku = event["sku"]
                if sku:
                    if browse_cap:  # PersonState.note_browse, inlined: the most frequent event
                        browsed = person.browsed
                        if browsed is None:
                            person.browsed = [t, sku]
                        else:
                            browsed.append(t)
                            browsed.append(sku)
                            if len(browsed) > 4 * browse_cap:
                                del browsed[:-2 * browse_cap]
                    if log_sessions and (not late or id(event) not in late):
                        log = person.log
                        if log is None:
                            person.log = [t, event["event_id"], sku]
                            person.log_until = t
                        else:
                            log.append(t)
                            log.append(event["event_id"])
                            log.append(sku)
                            if t > person.log_until:
                                person.log_until = t
                            if len(log) % (3 * LOG_COMPACT_AT) == 0:
                                self._compact_log(person)  # at each 64th entry: linear in a long session
            elif kind == "purchase":
                status = event["status"]
                if status == "paid":
                    person.note_revenue(t, event["amount_cents"] or 0, keep_revenue)
                    if log_sessions and (not late or id(event) not in late):
                        log = person.log
                        if log is None:
                            person.log = [t, event["event_id"], None]
                            person.log_until = t
                        else:
                            log += (t, event["event_id"], None)
                            if t > person.log_until:
                                person.log_until = t
                    for rule in purchase_rules:
                        self._schedule(person, rule.on_paid_purchase(person_id, event))
                elif status == "refunded":
                    person.note_revenue(t, -(event["amount_cents"] or 0), keep_revenue)
            elif kind == "share":
                person.note_touch(t)
            elif kind == "complaint":
                person.note_touch(t)
                if t > person.complaint_at:
                    person.complaint_at = t
                for rule in complaint_rules:
                    self._decide_cause(rule.on_complaint(person_id, event), out)
            if changed and dirty is not None:
                dirty.add(person_id)
            if t > wm:
                wm = t
                if heap and heap[0][0] <= wm:
                    self._fire_timers(wm, candidates)
        self.stats["events"] += len(resolved_events)
        for caused in merges.values():  # merges of events not handed over (e.g. late ones left out)
            self._merge(caused)
        if arrivals and journey.merges:
            # A visit that moved to another person by a merge is judged again for its new person
            # (an anonymous visitor identified as a VIP member); other arrivals were judged in the
            # batch their check-in came in, with the facts of that moment.
            targets = {merge.to_person for merge in journey.merges}
            for event_id, (visit, arrival) in arrivals.items():
                if visit.person_id in targets and judged_as.get(event_id) != visit.person_id:
                    self._judge_arrival(visit.person_id, self._person(visit.person_id), visit, arrival, candidates)
        if journey is not None:
            if journey.watermark_ms is not None and journey.watermark_ms > wm:
                wm = journey.watermark_ms
            self._on_closed_sessions(journey, candidates)
        if wm > -NEVER:
            self._set_watermark(wm)
            self._fire_timers(wm, candidates)
        self._decide_all(candidates, out)
        self._maybe_sweep()
        return out

    def _arrivals(self, journey: JourneyBatch) -> dict[str, tuple[Visit, Arrival]]:
        """Arrivals of the batch's visit updates to judge, by their check-in's event id: those found
        now, and those of visits that moved to a merge's survivor in this batch. A visit has one
        arrival, the first one found: a late check-in re-cutting the visit later does not make a
        second one (a split-off visit, with its own id, has its own)."""
        found: dict[str, tuple[Visit, Arrival]] = {}
        policy, arrived = self.journey_policy.visits, self._arrived
        targets = {merge.to_person for merge in journey.merges} if journey.merges else ()
        for visits, still_open in ((journey.visits_updated, True), (journey.visits_closed, False)):
            lookup = arrived.get if still_open else arrived.pop  # a closed visit is forgotten here
            for visit in visits:
                arrival = lookup(visit.visit_id, None)
                if arrival is not None:
                    if targets and visit.person_id in targets:
                        found[arrival.event_id] = (visit, arrival)
                    continue
                arrival = arrival_of(visit, policy)
                if arrival is not None:
                    if still_open:
                        arrived[visit.visit_id] = arrival
                    found[arrival.event_id] = (visit, arrival)
        for absorbed, _ in journey.visits_absorbed:
            arrived.pop(absorbed, None)
        return found

    def _judge_arrival(self, person_id: str, person: PersonState, visit: Visit, arrival: Arrival,
                       candidates: list[tuple[Trigger, int]]) -> None:
        for rule in self._arrival_rules:
            trigger = rule.on_arrival(person_id, person, visit, arrival)
            if trigger is not None and trigger.trigger_id not in self._decided:
                candidates.append((trigger, NEW))

    def _on_closed_sessions(self, journey: JourneyBatch, candidates: list[tuple[Trigger, int]]) -> None:
        """abandoned_browse: the sessions the batch closed, with their browses from the session log."""
        if not (self._session_rules and journey.sessions_closed):
            return
        gap, min_browses = self.journey_policy.sessions.gap_ms, self._min_browses
        for session in journey.sessions_closed:
            if _browse_count(session) < min_browses:
                continue  # cannot fire; its log entries go with a later session or by compaction
            browses, paid = self._take_session_log(session, min_browses)
            if len(browses) < min_browses:
                continue
            for rule in self._session_rules:
                trigger = rule.on_session_closed(session, browses, paid, gap)
                if trigger is not None:
                    candidates.append((trigger, NEW))

    def _take_session_log(self, session: Session, min_entries: int) -> tuple[list[tuple[int, str, str]], bool]:
        """The closed session's browses [(t, event_id, sku)] and whether it had a paid purchase, or
        ([], _) when no sku of it can reach `min_entries` browses.

        The log holds the person's open sessions and what sessions that could not fire left behind.
        A person's sessions close in the order they end, so entries up to this session's end are
        this session's (in its span) or leftovers (before it): all are forgotten now; later ones
        stay. The id check keeps it exact where two sessions touch (a max-length cut)."""
        person = self._persons.get(session.person_id)
        log = person.log if person is not None else None
        if not log:
            return [], False
        start, end = session.start, session.end
        self._touch(session.person_id)
        if person.log_until <= end:  # the usual case: no other open session
            person.log = None
        else:
            person.log = keep_log_entries(log, lambda t: t > end) or None
        mine = [(log[i], log[i + 1], log[i + 2]) for i in range(0, len(log), 3) if start <= log[i] <= end]
        if len(mine) < min_entries:
            return [], False
        skus = [entry[2] for entry in mine]
        if None in skus or len(skus) - len(set(skus)) < min_entries - 1:
            return [], True  # bought, or no sku repeats often enough (K times = K-1 repeats): the usual case
        ids = set(session.event_ids)
        return [entry for entry in mine if entry[1] in ids], False

    def _compact_log(self, person: PersonState) -> None:
        """Drop log entries too old to be in an open session (closed sessions that could not fire
        leave theirs behind): older than the newest entry by the longest session plus lateness."""
        low = person.log_until - self.horizons.log_ms
        person.log = keep_log_entries(person.log, lambda t: t >= low)

    # --- timers ----------------------------------------------------------------------------------

    def advance(self, watermark_ms: int) -> RuleOutput:
        """Move event time forward without events (the agent's idle clock): due timers fire."""
        out = RuleOutput()
        candidates: list[tuple[Trigger, int]] = []
        if self.watermark_ms is None or watermark_ms > self.watermark_ms:
            self._set_watermark(watermark_ms)
        if self.watermark_ms is not None:
            self._fire_timers(self.watermark_ms, candidates)
        self._decide_all(candidates, out)
        self._maybe_sweep()
        return out

    def finish(self) -> RuleOutput:
        """End of a finite input (a dry run): every pending timer fires at its due time."""
        out = RuleOutput()
        while self._heap:
            due = self._heap[0][0]
            candidates: list[tuple[Trigger, int]] = []
            self._set_watermark(max(due, self.watermark_ms if self.watermark_ms is not None else due))
            self._fire_timers(due, candidates)
            self._decide_all(candidates, out)
        return out

    def state_sizes(self) -> dict[str, int]:
        """How much state the engine holds (for the state-size gauges)."""
        return {"persons": len(self._persons), "pending_timers": len(self._timers), "decided": len(self._decided)}

    def pending_timers(self) -> list[Trigger]:
        """Share invites and held firings waiting for their due time (trigger.fired_at), by due time."""
        return sorted((timer.trigger for timer in self._timers.values()), key=lambda t: (t.fired_at, t.trigger_id))

    def _schedule(self, person: PersonState, trigger: Trigger, kind: str = SHARE_INVITE) -> None:
        timer_id = trigger.trigger_id
        if kind == SHARE_INVITE and (timer_id in self._decided or timer_id in self._timers):
            self.stats["duplicate_causes"] += 1
            return
        timer = self._timers[timer_id] = _Timer(kind, trigger)
        heapq.heappush(self._heap, timer.key())
        person.add_timer(timer_id)
        if self.track_changes:
            self._dirty_timers.add(timer_id)
            self._dirty_persons.add(trigger.person_id)

    def _fire_timers(self, watermark: int, candidates: list[tuple[Trigger, int]]) -> None:
        heap, timers = self._heap, self._timers
        while heap and heap[0][0] <= watermark:
            due, _, timer_id = heapq.heappop(heap)
            timer = timers.get(timer_id)
            if timer is None or timer.trigger.fired_at != due:
                continue  # stale entry
            del timers[timer_id]
            trigger = timer.trigger
            person = self._person(trigger.person_id)
            person.drop_timer(timer_id)
            if self.track_changes:
                self._dirty_timers.add(timer_id)
                self._dirty_persons.add(trigger.person_id)
            if timer.kind == HELD:
                candidates.append((trigger, RELEASED))
                continue
            rule = self.rules.get(trigger.rule)
            if rule is None:
                continue  # the rule was removed from the configuration since the timer started
            if rule.still_due(person, trigger):
                candidates.append((trigger, DUE))
            else:
                self.stats["share_invites_cancelled"] += 1

    # --- deciding: controls ------------------------------------------------------------------------

    def _decide_cause(self, trigger: Trigger, out: RuleOutput) -> None:
        """A firing caused by one event (complaints): once per trigger id."""
        if trigger.trigger_id in self._decided:
            self.stats["duplicate_causes"] += 1
            return
        self._note_decided(trigger)
        self._decide(trigger, out)

    def _decide_all(self, candidates: list[tuple[Trigger, int]], out: RuleOutput) -> None:
        """The batch's firings by fired_at, then the cause's time, then the order they arose in (the
        input's order); a new firing only if its id is new. A firing held over quiet hours whose
        window opens by the watermark joins the queue at its opening: the order, and so cooldown and
        cap decisions, do not depend on how the input was batched."""
        order = count()
        queue = [(trigger.fired_at, trigger.event_time, next(order), mode, trigger) for trigger, mode in candidates]
        heapq.heapify(queue)
        decided, timers, watermark = self._decided, self._heap, self.watermark_ms
        while queue:
            _, _, _, mode, trigger = heapq.heappop(queue)
            if trigger.person_id in self._merged_into:  # its person was merged since it fired
                trigger = trigger.for_person(self._survivor(trigger.person_id))
            if mode == NEW and trigger.trigger_id in decided:
                continue  # decided before: a re-evaluated visit, a replayed cause
            self._note_decided(trigger)
            self._decide(trigger, out, released=mode == RELEASED)
            if timers and watermark is not None and timers[0][0] <= watermark:
                due: list[tuple[Trigger, int]] = []
                self._fire_timers(watermark, due)
                for held, held_mode in due:
                    heapq.heappush(queue, (held.fired_at, held.event_time, next(order), held_mode, held))

    def _note_decided(self, trigger: Trigger, at: int | None = None) -> None:
        at = trigger.fired_at if at is None else at
        self._decided[trigger.trigger_id] = at
        self._decided_order.append((at, trigger.trigger_id))
        if self.track_changes:
            self._dirty_decided.add(trigger.trigger_id)

    def _decide(self, trigger: Trigger, out: RuleOutput, released: bool = False) -> None:
        """Publish, suppress or hold one firing. A released held firing is not judged on quiet hours
        again: it is at the window opening, and the other controls are judged anew."""
        if trigger.kind == SERVICE:
            self._publish(trigger, out)
            return
        person, controls = self._person(trigger.person_id), self.controls
        local_ms = controls.local_ms(trigger.fired_at, trigger.store_id)
        day = local_ms // DAY_MS
        reason = controls.refusal(person, trigger, day)
        if reason is None and not released:
            opening = controls.quiet_until(trigger.fired_at, trigger.store_id, local_ms)
            if opening is not None:
                if self.controls.quiet.mode == "hold":
                    held = trigger.at(opening)
                    self._schedule(person, held, HELD)
                    self._note_decided(trigger, opening)
                    out.held.append(Held(held, opening))
                    self.stats["held"] += 1
                    return
                reason = QUIET_HOURS
        if reason is not None:
            out.suppressed.append(Suppressed(trigger, reason))
            by_reason = self.stats["suppressed"].setdefault(trigger.rule, {})
            by_reason[reason] = by_reason.get(reason, 0) + 1
            return
        self.controls.record(person, trigger, day)
        self._touch(trigger.person_id)
        self._publish(trigger, out)

    def _publish(self, trigger: Trigger, out: RuleOutput) -> None:
        out.triggers.append(trigger)
        published = self.stats["published"]
        published[trigger.rule] = published.get(trigger.rule, 0) + 1

    # --- aggregate rules ----------------------------------------------------------------------------

    def on_aggregate(self, rule_name: str, rows: Iterable[dict[str, Any]]) -> RuleOutput:
        """Result rows of an aggregate rule's query (store_complaint_spike, lapsed_member) -> triggers,
        through the marketing controls for marketing rules."""
        rule = self.rules.get(rule_name)
        if rule is None or not getattr(rule, "AGGREGATE", False):
            aggregates = [name for name, r in self.rules.items() if getattr(r, "AGGREGATE", False)]
            raise KeyError(f"{rule_name!r} is not an enabled aggregate rule of {self.config.source}; "
                           f"enabled aggregate rules: {', '.join(aggregates) or 'none'}")
        out = RuleOutput()
        triggers = (rule.build_trigger(row) for row in rows)
        self._decide_all([(trigger, NEW) for trigger in triggers if trigger is not None], out)
        return out

    # --- person merges --------------------------------------------------------------------------

    def _merge(self, merges: list[Any]) -> None:
        """PersonMerge(from, to): the absorbed person's facts, controls and timers move to the survivor."""
        for merge in merges:
            self._merged_into[merge.from_person] = merge.to_person
            source = self._persons.pop(merge.from_person, None)
            if source is None:
                continue
            self._person(merge.to_person).absorb(source, self._browse_cap)
            for timer_id in source.timers or ():
                timer = self._timers[timer_id]
                timer.trigger = timer.trigger.for_person(merge.to_person)
                if self.track_changes:
                    self._dirty_timers.add(timer_id)
            self._touch(merge.from_person)
            self._touch(merge.to_person)

    def _survivor(self, person_id: str) -> str:
        while person_id in self._merged_into:
            person_id = self._merged_into[person_id]
        return person_id

    def _person(self, person_id: str | None) -> PersonState:
        person = self._persons.get(person_id)
        if person is None:
            seen = self.watermark_ms if self.watermark_ms is not None else -NEVER
            person = self._persons[person_id] = PersonState(seen)
        return person

    def _touch(self, person_id: str) -> None:
        if self.track_changes:
            self._dirty_persons.add(person_id)

    # --- memory: expiry by event time ------------------------------------------------------------

    def _set_watermark(self, watermark: int) -> None:
        self.watermark_ms = watermark
        if self._next_sweep is None:
            self._next_sweep = watermark + SWEEP_EVERY_MS

    def _maybe_sweep(self) -> None:
        if self._next_sweep is not None and self.watermark_ms is not None and self.watermark_ms >= self._next_sweep:
            self.sweep()

    def sweep(self) -> None:
        """Expire persons idle longer than any rule looks back, and decided ids older than
        DECIDED_HORIZON_MS. Active persons need no trimming: their collections are capped."""
        wm = self.watermark_ms
        if wm is None:
            return
        today, idle_since = self.controls.day(wm, None), wm - self._idle_ms
        idle = [(pid, person) for pid, person in self._persons.items()
                if person.seen < idle_since and person.seen != SETTLED]
        for person_id, person in idle:
            changed, empty = person.expire(self.horizons, wm, today)
            if empty:
                del self._persons[person_id]
            else:
                person.seen = SETTLED  # only lasting facts left (revenue, tier, refused consent)
            self._touch(person_id)
        low, decided, order = wm - DECIDED_HORIZON_MS, self._decided, self._decided_order
        while order and order[0][0] < low:
            _, tid = order.popleft()
            at = decided.get(tid)
            if at is not None and at < low and tid not in self._timers:
                del decided[tid]
                if self.track_changes:
                    self._dirty_decided.add(tid)
        self._next_sweep = wm + SWEEP_EVERY_MS

    # --- state ---------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """All state as {changelog key: plain value}; JSON-safe, independent of the live state."""
        state: dict[str, Any] = {"wm": self.watermark_ms, "sweep": self._next_sweep}
        state.update(("p:" + pid, person.to_plain(copy=True)) for pid, person in self._persons.items())
        state.update(("t:" + tid, timer.to_plain()) for tid, timer in self._timers.items())
        state.update(("d:" + tid, fired_at) for tid, fired_at in self._decided.items())
        return state

    def drain_changes(self) -> list[tuple[str, Any]]:
        """(key, plain value or None) changed since the last call: one changelog flush. Values share
        lists with the live state (no copies on the hot path): encode them before the next batch."""
        if not self.track_changes:
            raise RuntimeError("drain_changes() needs RuleEngine(track_changes=True); "
                               "use snapshot() for a one-off copy of the state")
        changes: list[tuple[str, Any]] = [("wm", self.watermark_ms), ("sweep", self._next_sweep)]
        for pid in sorted(self._dirty_persons):
            person = self._persons.get(pid)
            changes.append(("p:" + pid, person.to_plain() if person is not None else None))
        for tid in sorted(self._dirty_timers):
            timer = self._timers.get(tid)
            changes.append(("t:" + tid, timer.to_plain() if timer is not None else None))
        changes += [("d:" + tid, self._decided.get(tid)) for tid in sorted(self._dirty_decided)]
        self._dirty_persons, self._dirty_timers, self._dirty_decided = set(), set(), set()
        return changes

    @classmethod
    def restore(cls, state: dict[str, Any] | Iterable[tuple[str, Any]], rules: RulesConfig | None = None,
                journey: JourneyPolicy = JourneyPolicy(), track_changes: bool = False) -> RuleEngine:
        """Rebuild from `snapshot()` or from changelog pairs in order (last value wins, None deletes)."""
        latest = dict(state.items() if isinstance(state, dict) else state)
        engine = cls(rules, journey, track_changes)
        engine.watermark_ms = latest.get("wm")
        engine._next_sweep = latest.get("sweep")
        for key, value in latest.items():
            if value is None:
                continue
            if key.startswith("p:"):
                engine._persons[key[2:]] = PersonState.from_plain(value)
            elif key.startswith("t:"):
                timer = _Timer.from_plain(value)
                engine._timers[key[2:]] = timer
                engine._heap.append(timer.key())
            elif key.startswith("d:"):
                engine._decided[key[2:]] = value
        heapq.heapify(engine._heap)
        engine._decided_order.extend(sorted((at, tid) for tid, at in engine._decided.items()))
        return engine


def _browse_count(session: Session) -> int:
    """Browse events in the session (its counter when it has one, else its counts)."""
    count = getattr(session, "n_browse", None)
    return count if count is not None else session.counts.get("browse", 0)
