"""Marketing controls: consent, complaint suppression, cooldown, daily cap, quiet hours (controls.py).

Edges are checked to the millisecond on MarketingControls itself, then end to end through the engine.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from test_rules_harness import DAY, HOUR, NO_QUIET, Pipeline, browse, checkin, config, purchase, shanghai, at

from pipeline.rules.config import ControlsConfig, QuietHours
from pipeline.rules.controls import MarketingControls
from pipeline.rules.state import PersonState
from pipeline.rules.trigger import Trigger

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local_ms(text: str, zone: ZoneInfo = SHANGHAI) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=zone).timestamp() * 1000)


def controls(**overrides) -> MarketingControls:
    return MarketingControls(ControlsConfig(**overrides), complaint_suppression_ms=7 * DAY)


def firing(fired_at: int, rule: str = "btv", store: str | None = "S1") -> Trigger:
    return Trigger("id", rule, "browse_then_visit", "marketing", "m:42", "42", store, fired_at, fired_at, ("c",), {})


# --- quiet hours --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("local, quiet", [
    ("2026-11-22T21:59:59.999", False),
    ("2026-11-22T22:00:00", True),
    ("2026-11-22T23:59:59.999", True),
    ("2026-11-23T00:00:00", True),
    ("2026-11-23T07:59:59.999", True),
    ("2026-11-23T08:00:00", False),
    ("2026-11-23T12:00:00", False),
])
def test_quiet_hours_edges_across_midnight(local, quiet):
    assert (controls().quiet_until(local_ms(local), "S1") is not None) == quiet


def test_held_firing_opens_at_the_next_local_end_before_or_after_midnight():
    c = controls()
    assert c.quiet_until(local_ms("2026-11-22T23:30:00"), "S1") == local_ms("2026-11-23T08:00:00")
    assert c.quiet_until(local_ms("2026-11-23T01:00:00"), "S1") == local_ms("2026-11-23T08:00:00")


def test_quiet_window_within_one_day():
    c = controls(quiet_hours=QuietHours(13 * 60, 14 * 60, "drop"))
    assert c.quiet_until(local_ms("2026-11-22T12:59:59"), None) is None
    assert c.quiet_until(local_ms("2026-11-22T13:00:00"), None) == local_ms("2026-11-22T14:00:00")
    assert c.quiet_until(local_ms("2026-11-22T14:00:00"), None) is None


def test_quiet_hours_are_judged_in_the_store_time_zone():
    c = controls(store_timezones={"fr-01": "Europe/Paris"})
    paris = ZoneInfo("Europe/Paris")
    at_paris_23 = local_ms("2026-11-22T23:00:00", paris)  # 06:00 next day in Shanghai: quiet there too
    at_paris_15 = local_ms("2026-11-22T15:00:00", paris)  # 22:00 in Shanghai
    assert c.quiet_until(at_paris_23, "fr-01") == local_ms("2026-11-23T08:00:00", paris)
    assert c.quiet_until(at_paris_15, "fr-01") is None
    assert c.quiet_until(at_paris_15, "S1") is not None  # a Shanghai store at the same instant


def test_quiet_hours_follow_daylight_saving_time():
    c = controls(default_timezone="Europe/Paris")
    paris = ZoneInfo("Europe/Paris")
    # Night of 2026-03-28 -> 29: clocks go forward at 02:00; the window still opens at 08:00 local.
    assert c.quiet_until(local_ms("2026-03-28T23:00:00", paris), None) == local_ms("2026-03-29T08:00:00", paris)


def test_no_quiet_hours_when_switched_off():
    assert controls(quiet_hours=None).quiet_until(local_ms("2026-11-22T23:00:00"), "S1") is None


# --- cooldown, cap, consent, complaint ----------------------------------------------------------------------

def test_cooldown_edges():
    c, person = controls(), PersonState()
    c.record(person, firing(1_000_000))
    assert c.refusal(person, firing(1_000_000 + 24 * HOUR - 1)) == "cooldown"
    assert c.refusal(person, firing(1_000_000 + 24 * HOUR)) is None
    assert c.refusal(person, firing(1_000_000 - 24 * HOUR + 1)) == "cooldown"  # an earlier firing decided later
    assert c.refusal(person, firing(1_000_000, rule="other")) is None        # per (rule, person)


def test_daily_cap_counts_per_local_day():
    c, person = controls(cooldown_ms=0), PersonState()
    for minute in range(3):
        c.record(person, firing(local_ms("2026-11-22T10:00:00") + minute))
    assert c.refusal(person, firing(local_ms("2026-11-22T23:59:59.999"))) == "daily_cap"
    assert c.refusal(person, firing(local_ms("2026-11-23T00:00:00"))) is None


def test_consent_false_refuses_and_unknown_allows():
    c, person = controls(), PersonState()
    assert c.refusal(person, firing(0)) is None
    person.consent = False
    assert c.refusal(person, firing(0)) == "consent"


def test_complaint_suppression_edges():
    c, person = controls(), PersonState()
    person.complaint_at = 5_000_000
    assert c.refusal(person, firing(5_000_000 + 7 * DAY - 1)) == "complaint_suppression"
    assert c.refusal(person, firing(5_000_000 + 7 * DAY)) is None
    assert c.refusal(person, firing(5_000_000 - HOUR)) == "complaint_suppression"  # decided after the complaint


# --- end to end -------------------------------------------------------------------------------------------

BTV = {"type": "browse_then_visit"}
INVITE = {"type": "share_invite"}
ABANDONED = {"type": "abandoned_browse", "params": {"min_browses": 2}}


def visit_day(member: str, day: int, hh: int, mm: int = 0, store: str = "S1") -> list[dict]:
    """A browse, then an associate at hh:mm Shanghai on `day`."""
    minute = shanghai(day, hh, mm)
    return [browse(f"b-{member}-{day}-{hh}-{mm}", minute - 60, member_id=member, sku="sku-1", consent_marketing=None),
            checkin(f"c-{member}-{day}-{hh}-{mm}", minute, "associate", member_id=member, mac=f"mac-{member}",
                    store=store, consent_marketing=None)]


def test_consent_flip_false_then_true():
    p = Pipeline(config(BTV, cooldown_h=0, daily_cap=None, **NO_QUIET))
    p.feed(browse("x1", 0, member_id="42", consent_marketing=False), *visit_day("42", 0, 12))
    assert p.reasons() == ["consent"] and p.fired() == []
    p.feed(browse("x2", shanghai(0, 13), member_id="42", consent_marketing=True), *visit_day("42", 0, 14))
    assert len(p.fired()) == 1


def test_late_consent_event_does_not_override_a_newer_one():
    p = Pipeline(config(BTV, **NO_QUIET))
    p.feed(browse("x2", 30, member_id="42", consent_marketing=True),
           browse("x1", 10, member_id="42", consent_marketing=False),  # older, arrives later
           *visit_day("42", 0, 12))
    assert len(p.fired()) == 1


def test_events_without_consent_keep_the_last_known_value():
    p = Pipeline(config(BTV, **NO_QUIET))
    p.feed(browse("x1", 0, member_id="42", consent_marketing=False),
           browse("x2", 30, member_id="42", consent_marketing=None), *visit_day("42", 0, 12))
    assert p.reasons() == ["consent"]


def test_daily_cap_across_rules_end_to_end():
    p = Pipeline(config(BTV, INVITE, {"name": "btv2", "type": "browse_then_visit"},
                        {"name": "btv3", "type": "browse_then_visit"}, daily_cap=3, **NO_QUIET))
    p.feed(*visit_day("42", 0, 11), purchase("p1", shanghai(0, 12), 100, member_id="42"))
    p.advance(shanghai(0, 15))
    assert sorted(t.rule for t in p.fired()) == ["browse_then_visit", "btv2", "btv3"]
    assert [(s.trigger.rule, s.reason) for s in p.out.suppressed] == [("share_invite", "daily_cap")]


def test_quiet_hours_drop_mode_suppresses_with_reason():
    p = Pipeline(config(BTV, quiet_hours={"start": "22:00", "end": "08:00", "mode": "drop"}))
    p.feed(*visit_day("42", 0, 22, 30))
    assert p.fired() == [] and p.reasons() == ["quiet_hours"]


def test_quiet_hours_hold_publishes_at_eight_with_the_same_id():
    p = Pipeline(config(BTV))
    out = p.feed(*visit_day("42", 0, 23, 10))
    (held,) = out.held
    assert held.release_at == at(shanghai(1, 8))
    p.advance(shanghai(1, 7, 59))
    assert p.fired() == []
    p.advance(shanghai(1, 8))
    (trigger,) = p.fired()
    assert trigger.trigger_id == held.trigger.trigger_id and trigger.fired_at == at(shanghai(1, 8))
    assert trigger.event_time == at(shanghai(0, 23, 10))


def test_held_firing_is_suppressed_at_the_opening_when_consent_was_withdrawn_overnight():
    p = Pipeline(config(BTV))
    p.feed(*visit_day("42", 0, 23, 10), browse("x", shanghai(1, 2), member_id="42", consent_marketing=False))
    p.advance(shanghai(1, 9))
    assert p.fired() == [] and p.reasons() == ["consent"]


def test_held_firing_counts_against_the_opening_day_cap():
    p = Pipeline(config(BTV, ABANDONED, cooldown_h=0, daily_cap=1))
    p.feed(*visit_day("42", 0, 23, 10))
    p.advance(shanghai(1, 8))
    assert [t.rule for t in p.fired()] == ["browse_then_visit"]
    p.feed(browse("d1-1", shanghai(1, 9), member_id="42", sku="sku-9"),
           browse("d1-2", shanghai(1, 9, 5), member_id="42", sku="sku-9"))
    p.close_all()
    assert [(s.trigger.rule, s.reason) for s in p.out.suppressed] == [("abandoned_browse", "daily_cap")]


def test_a_visit_at_a_store_in_another_zone_is_judged_in_that_zone():
    p = Pipeline(config(BTV, store_timezones={"fr-01": "Europe/Paris"},
                        quiet_hours={"start": "22:00", "end": "08:00", "mode": "drop"}))
    p.feed(*visit_day("42", 0, 23, 0, store="fr-01"))  # 23:00 Shanghai = 16:00 Paris
    assert len(p.fired()) == 1


def test_marketing_to_one_person_does_not_cap_another():
    p = Pipeline(config(BTV, daily_cap=1, **NO_QUIET))
    p.feed(*visit_day("42", 0, 11), *visit_day("43", 0, 11))
    assert sorted(t.person_id for t in p.fired()) == ["m:42", "m:43"]
