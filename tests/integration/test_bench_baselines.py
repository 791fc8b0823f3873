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
