"""Each benchmark baseline (bench/baselines/) counts every event, in both record layouts, on the real broker."""

import pytest

from bench.baselines import naive_faust, quix, raw_limit
from bench.baselines.common import LAYOUTS, encode_records, generate_events

EVENTS = 2000


@pytest.fixture(scope="module")
def events():
    return generate_events(EVENTS)


def test_the_events_are_the_simulators_and_both_layouts_carry_all_of_them(events):
    from pipeline.serde import EventCodec

    assert len(events) == EVENTS and events == generate_events(EVENTS)
    codec = EventCodec()
    for layout in LAYOUTS:
        decoded = [e for rows in encode_records(events, layout, 4).values() for _, _, v in rows for e in codec.decode(v)]
        assert sorted(e["event_id"] for e in decoded) == sorted(e["event_id"] for e in events)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("baseline", [raw_limit, naive_faust, quix], ids=lambda m: m.NAME)
def test_baseline_counts_every_event(stack, events, baseline, layout):
    result = baseline.run(stack, events, layout, timeout_s=150)

    assert result["contestant"] == baseline.NAME and result["layout"] == layout
    assert result["counted"] == EVENTS
    assert result["events_per_s"] and result["events_per_s"] > 0
    if layout == "batched":
        assert result["records"] < EVENTS / 10


@pytest.mark.timeout(300)
def test_the_pipeline_contestant_stores_every_event_once_through_its_own_workers(stack, events):
    from bench.baselines import pipeline_e2e

    result = pipeline_e2e.run(stack, events, "batched", timeout_s=240)

    assert result["contestant"] == "o2o_pipeline" and result["counted"] == EVENTS
    assert result["stored"] == EVENTS  # the warm-up event is not counted
    assert set(result["cpu_s"]) == set(pipeline_e2e.WORKERS)
    assert 0 < result["accepted_done_s"] <= result["journey_done_s"] <= result["elapsed_s"]
