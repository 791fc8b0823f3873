"""The traffic simulator: deterministic, the promised mix, coherent journeys, bad and late records as labelled."""

import itertools
import json
from collections import Counter, defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import simulate
from pipeline.simulate import Mix, Simulation, generate
from pipeline.traffic import bounded, mix_from_settings, plan_start_ms
from pipeline.validation import REASON_CODES, Rejection, validate, validate_json_line

START = 1_795_305_600_000  # 2026-11-22T00:00:00+08:00
MINUTE = 60_000


def records(seed=1, n=20_000, **mix):
    return list(itertools.islice(Simulation(seed, START, Mix(**mix)).records(), n))


def whole(seed=1, rounds=2, **mix):
    """Complete rounds: every journey started is finished (a cut-off stream ends mid-journey)."""
    return list(Simulation(seed, START, Mix(**mix)).records(rounds=rounds))


def check(record):
    """What pipeline.validation says about a record, judged at its arrival time."""
    if isinstance(record.value, str):
        return validate_json_line(record.value, record.arrival_ms)
    return validate(record.value, record.arrival_ms)


def test_the_same_seed_gives_the_same_records_and_another_seed_does_not():
    first = [r.json_line() for r in records(seed=5, n=5000, bad_rate=0.05, late_rate=0.2)]
    again = [r.json_line() for r in records(seed=5, n=5000, bad_rate=0.05, late_rate=0.2)]
    other = [r.json_line() for r in records(seed=6, n=5000, bad_rate=0.05, late_rate=0.2)]
    assert first == again
    assert first != other


def test_generate_keeps_its_contract_good_events_of_one_round_in_time_order_within_five_hours():
    events = generate(7, START, Mix(persons=40))
    assert events == generate(7, START, Mix(persons=40))
    assert [e["occurred_at"] for e in events] == sorted(e["occurred_at"] for e in events)
    assert all(type(validate(e, START + 5 * 3600_000)) is dict for e in events)
    assert max(e["occurred_at"] for e in events) - START < 5 * 3600_000 - 5 * MINUTE
    assert len({e["event_id"] for e in events}) == len(events)


def test_every_good_record_is_valid_and_every_bad_one_is_rejected_with_its_reason():
    stream = records(n=30_000, bad_rate=0.05, late_rate=0.1)
    reasons = Counter()
    for record in stream:
        verdict = check(record)
        if record.bad:
            assert isinstance(verdict, Rejection) and verdict.reason == record.bad, (record, verdict)
            assert verdict.detail
            reasons[record.bad] += 1
        else:
            assert type(verdict) is dict, (record, verdict)
    assert set(reasons) == set(REASON_CODES), "every reason code is exercised"


def test_event_ids_are_unique_across_rounds_including_bad_records():
    stream = records(n=40_000, persons=500, bad_rate=0.05)
    ids = [r.value["event_id"] for r in stream if isinstance(r.value, dict)]
    assert len(ids) == len(set(ids))
    assert max(r.value["occurred_at"] for r in stream if not r.bad) - START > 2 * 90 * MINUTE, "several rounds"


def test_the_mix_has_every_kind_of_traffic_the_issue_asks_for():
    stream = [r.value for r in records(n=40_000, persons=1000) if not r.bad]
    kinds = Counter(e["kind"] for e in stream if e["event_type"] == "wifi_checkin")
    assert set(kinds) == {"probe", "associate", "portal_login", "disassociate"}
    types = Counter(e["event_type"] for e in stream)
    assert set(types) == {"browse", "wifi_checkin", "purchase", "share", "complaint"}
    statuses = Counter(e["status"] for e in stream if e["event_type"] == "purchase")
    assert statuses["paid"] > 0 and statuses["refunded"] > 0
    assert any(e.get("consent_marketing") is False for e in stream), "marketing opt-outs"
    assert any(e["event_type"] == "purchase" and e["channel"] == "app" for e in stream), "online orders"
    # Staff devices: one MAC seen at one store all round long, strong signal.
    by_mac = defaultdict(list)
    for e in stream:
        if e["event_type"] == "wifi_checkin":
            by_mac[e["wifi_mac"]].append(e)
    staff = [seen for seen in by_mac.values() if max(e["occurred_at"] for e in seen) - min(e["occurred_at"] for e in seen) > 80 * MINUTE
             and all(e["kind"] == "associate" for e in seen)]
    assert staff and all(e["rssi"] > -60 for seen in staff for e in seen)
    # Passers-by: probes only, weak signal.
    passersby = [seen for seen in by_mac.values() if all(e["kind"] == "probe" for e in seen)]
    assert passersby and all(e["rssi"] <= -75 for seen in passersby for e in seen)


def journeys(stream):
    by_journey = defaultdict(dict)
    for e in stream:
        journey, _, step = e["event_id"].rpartition("-")
        if "p" in journey and not journey.startswith(("r0s", "r0x")) and journey[1:].split("p")[0].isdigit():
            by_journey[journey][step] = e
    return by_journey


def test_journeys_are_coherent_in_time_browse_then_visit_then_buy_then_share_complain_or_refund():
    stream = [r.value for r in whole(persons=2000) if not r.bad]
    walk_ins = browse_only = visits = 0
    for steps in journeys(stream).values():
        at = {step: e["occurred_at"] for step, e in steps.items()}
        browses = [t for step, t in at.items() if step.startswith("b")]
        if "w0" in at:
            visits += 1
            assert at["w0"] <= at["w1"] <= at["w9"], steps
            if browses:
                assert max(browses) < at["w0"], "browsing comes before the visit"
            else:
                walk_ins += 1
            if "o" in at:
                assert at["w1"] < at["o"] < at["w9"], "paid while in the store"
                assert steps["o"]["store_id"] == steps["w0"]["store_id"]
        else:
            assert browses, steps
            browse_only += 1
        for later in ("s", "c", "rf"):
            if later in at:
                assert "o" in at and at[later] > at["o"], (later, steps)
        if "rf" in steps:
            assert steps["rf"]["order_id"] == steps["o"]["order_id"] and steps["rf"]["status"] == "refunded"
        if "c" in steps:
            assert steps["c"]["order_id"] == steps["o"]["order_id"]
    assert walk_ins and browse_only and visits


def test_shares_of_the_mix_come_out_in_proportion():
    mix = dict(persons=4000, walk_in_share=0.2, visit_share=0.5, app_share=1.0)
    stream = [r.value for r in whole(rounds=3, **mix) if not r.bad]
    found = list(journeys(stream).values())
    walk_in = sum(1 for j in found if "w0" in j and not any(s.startswith("b") for s in j)) / len(found)
    browsing = [j for j in found if any(s.startswith("b") for s in j)]
    visiting = sum(1 for j in browsing if "w0" in j) / len(browsing)
    assert walk_in == pytest.approx(0.2, abs=0.03)
    assert visiting == pytest.approx(0.5, abs=0.03)


def test_bad_and_late_rates_are_what_was_asked():
    stream = list(Simulation(3, START, Mix(persons=2000, bad_rate=0.04, late_rate=0.25)).records(rounds=3))
    bad = sum(1 for r in stream if r.bad) / len(stream)
    wifi = [r for r in stream if not r.bad and r.value["event_type"] == "wifi_checkin"]
    late = sum(1 for r in wifi if r.late) / len(wifi)
    assert bad == pytest.approx(0.04, abs=0.005)
    assert late == pytest.approx(0.25, abs=0.02)
    assert all(not r.late for r in stream if not r.bad and r.value["event_type"] != "wifi_checkin")


def test_late_uploads_arrive_well_after_they_happened_among_newer_events():
    stream = records(n=30_000, late_rate=0.2, late_min_s=600, late_max_s=1200)
    arrivals = [r.arrival_ms for r in stream]
    assert arrivals == sorted(arrivals), "records come out in arrival order"
    late = [r for r in stream if r.late]
    assert late
    for record in late:
        assert 600_000 <= record.arrival_ms - record.value["occurred_at"] <= 1_200_000
    newest_before = 0
    overtaken = 0
    for record in stream:
        if not record.bad:
            if record.late and record.value["occurred_at"] < newest_before - 5 * MINUTE:
                overtaken += 1
            newest_before = max(newest_before, record.value["occurred_at"])
    assert overtaken > len(late) * 0.9, "late events arrive after newer ones"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), persons=st.integers(1, 60), stores=st.integers(1, 6),
       bad_rate=st.floats(0, 0.5), late_rate=st.floats(0, 1), visit=st.floats(0, 1), walk_in=st.floats(0, 1),
       members=st.floats(0, 1), app=st.floats(0, 1))
def test_any_mix_gives_valid_good_records_rejected_bad_ones_and_arrival_order(
        seed, persons, stores, bad_rate, late_rate, visit, walk_in, members, app):
    mix = Mix(persons=persons, stores=stores, bad_rate=bad_rate, late_rate=late_rate, visit_share=visit,
              walk_in_share=walk_in, member_share=members, app_share=app, round_minutes=30)
    stream = list(Simulation(seed, START, mix).records(rounds=2))
    assert [r.arrival_ms for r in stream] == sorted(r.arrival_ms for r in stream)
    for record in stream:
        verdict = check(record)
        if record.bad:
            assert isinstance(verdict, Rejection) and verdict.reason == record.bad
        else:
            assert type(verdict) is dict, verdict
            assert record.value["occurred_at"] >= START
            assert record.arrival_ms - record.value["occurred_at"] <= mix.late_max_s * 1000
    json.loads("[" + ",".join(r.json_line() for r in stream if not r.bad) + "]")


@pytest.mark.parametrize("bad", [dict(visit_share=1.5), dict(persons=0), dict(bad_rate=0.7),
                                 dict(late_min_s=100, late_max_s=10)])
def test_a_bad_mix_fails_naming_the_value(bad):
    with pytest.raises(ValueError) as caught:
        Mix(**bad)
    assert str(list(bad.values())[-1]) in str(caught.value)


def test_reason_codes_of_the_simulator_are_those_of_validation():
    assert {simulate.MALFORMED, simulate.SCHEMA, simulate.NO_IDENTITY, simulate.FUTURE_TIMESTAMP,
            simulate.INVALID_VALUE} == set(REASON_CODES)


def test_mix_from_settings_layers_flags_over_settings_over_defaults():
    from pipeline.config import load_settings

    settings = load_settings(None, simulate_visit_share=0.9, simulate_persons=77)
    mix = mix_from_settings(settings, persons=None, stores=3)
    assert (mix.visit_share, mix.persons, mix.stores, mix.buy_share) == (0.9, 77, 3, Mix().buy_share)


def test_plan_start_puts_the_whole_run_before_now():
    now = START + 30 * 86_400_000
    for events in (100, 10_000, 60_000):
        mix = Mix(persons=500, late_rate=0.1, bad_rate=0.02)
        start = plan_start_ms(2, mix, events, now)
        stream = list(itertools.islice(Simulation(2, start, mix).records(), events))
        assert max(r.value["occurred_at"] for r in stream if not r.bad) < now
        assert max(r.arrival_ms for r in stream) < now


def test_bounded_stops_at_the_count_or_the_deadline():
    ticks = iter(range(100))
    assert len(list(bounded(iter(range(50)), 10, None))) == 10
    assert len(list(bounded(iter(range(50)), None, 5, clock=lambda: next(ticks)))) == 4
