"""The aggregate trigger rules on ClickHouse: their SQL on 18.16 and on current ClickHouse (chdb)
against hand-computed answers, and the scan runner (sinks/trigger_scan.py) on the real server.

The dataset is evaluated at NOW = 2026-11-22T12:00Z (20:00 in Shanghai: outside the default quiet
hours), with store_complaint_spike at window_min 15, threshold 3 and lapsed_member at days 30
(lapse line L = NOW - 30 days = 2026-10-23T12:00Z), complaint suppression 7 days.

    store complaints (window [11:45, 12:00))                             expected
    S1    c-z 11:45:00.000 (exactly the start), c-a 11:50, c-m 11:59:59.999,  row: 3, [c-z, c-a, c-m]
          c-b 11:44:59.999 (just before), c-y 12:00 (exactly the end);
          c-a delivered twice
    S2    2 in the window (under the threshold)                              no row
    S3    4 in the window, k-2 and k-1 at the same millisecond                row: 4, [k-0, k-1, k-2, k-3]
    ''    3 complaints without a store                                        no row

    member  activity (visits: wifi_checkin but probes; paid purchases)        expected
    m:ann   associate at S1 exactly at L (delivered twice); an old complaint  lapsed, ann-v2, S1
    m:ben   paid purchase 1 ms after L                                       active
    m:cat   own visit 09-01; his app d:cat-phone (merged in) portal_login
            at S2 on 11-20                                                    active (merged person)
    m:dan   own paid online purchase 09-10; his MAC w:danmac (merged in)
            associate at S2 10-01                                             lapsed, dan-w, S2
    m:eve   visit 09-01; consent true 09-02, then false 11-01                 left out (consent)
    m:fay   visit 09-01; consent false 09-02, then true 11-01                 lapsed, fay-v, S1
    m:gus   visit 09-01; complaint 11-20 (within 7 days)                      left out (complaint)
    m:hal   only probes and an unpaid order                                   no activity: not listed
    m:ivy   paid online purchase 09-15; a probe 11-21                         lapsed, ivy-p, no store
    m:jon   visit 09-01; a visit exactly at NOW (not before it)               lapsed, jon-v, S1
    m:lea   visit 09-01; consent true and false at the same millisecond       left out (refusal wins)
    p:kim   visit 09-01 (not a member)                                        not listed
"""

from __future__ import annotations

import pytest

from pipeline.rules import trigger_id
from pipeline.rules.config import load_rules, parse_rules
from sinks.migrate import apply_migrations
from sinks.trigger_scan import evaluate, parameters, query_rows, render, scan
from sinks.writer import apply_person_merges, insert, trigger_log_records
from tests.sql import warehouse_fixture as wh

MINUTE = 60_000
DAY = 24 * 60 * MINUTE
NOW = wh.ms("2026-11-22T12:00")
L = NOW - 30 * DAY
RULES = parse_rules({"rules": [
    {"name": "store_complaint_spike", "type": "store_complaint_spike", "params": {"window_min": 15, "threshold": 3}},
    {"name": "lapsed_member", "type": "lapsed_member", "params": {"days": 30}},
    {"name": "complaint_recovery", "type": "complaint_recovery", "params": {"suppress_marketing_days": 7}},
]}, "test-rules")
SEVEN_DAYS = 7 * DAY


def at(epoch_ms: int) -> str:
    """warehouse_fixture.event takes ISO text; this gives it for an epoch ms (milliseconds kept)."""
    from datetime import datetime, timezone

    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc).replace(tzinfo=None).isoformat(
        timespec="milliseconds")


def complaint(event_id: str, when: str | int, store: str | None, person: str = "m:zed") -> dict:
    return wh.event("complaint", event_id, when if isinstance(when, str) else at(when), person,
                    channel="call_center", store_id=store, complaint_id=f"k-{event_id}", category="service",
                    severity="high")


def visit(event_id: str, when: str | int, person: str, store: str = "S1", kind: str = "associate", **fields) -> dict:
    return wh.event("wifi_checkin", event_id, when if isinstance(when, str) else at(when), person, channel="wifi",
                    store_id=store, kind=kind, rssi=-50, ap_id=f"{store}-ap1", **fields)


def paid(event_id: str, when: str | int, person: str, store: str | None = None, status: str = "paid") -> dict:
    return wh.event("purchase", event_id, when if isinstance(when, str) else at(when), person,
                    channel="pos" if store else "app", store_id=store, order_id=f"o-{event_id}", status=status,
                    amount_cents=1_000, currency="CNY", items=[])


def consent(event_id: str, when: str | int, person: str, value: bool) -> dict:
    return wh.event("browse", event_id, when if isinstance(when, str) else at(when), person, channel="app",
                    page="/home", consent_marketing=value)


OLD = "2026-09-01T10:00"
EVENTS = [
    # store_complaint_spike
    complaint("c-b", NOW - 15 * MINUTE - 1, "S1"),
    complaint("c-z", NOW - 15 * MINUTE, "S1"),
    complaint("c-a", "2026-11-22T11:50", "S1"),
    complaint("c-m", NOW - 1, "S1"),
    complaint("c-y", NOW, "S1"),
    complaint("s2-1", "2026-11-22T11:46", "S2"),
    complaint("s2-2", "2026-11-22T11:58", "S2"),
    complaint("k-3", "2026-11-22T11:59", "S3"),
    complaint("k-2", "2026-11-22T11:52", "S3"),
    complaint("k-1", "2026-11-22T11:52", "S3"),
    complaint("k-0", "2026-11-22T11:47", "S3"),
    complaint("n-1", "2026-11-22T11:50", None),
    complaint("n-2", "2026-11-22T11:51", None),
    complaint("n-3", "2026-11-22T11:52", None),
    # lapsed_member
    visit("ann-v1", OLD, "m:ann", member_id="ann"),
    visit("ann-v2", L, "m:ann"),
    complaint("ann-c", NOW - 8 * DAY, None, person="m:ann"),
    visit("ben-v", OLD, "m:ben"),
    paid("ben-p", L + 1, "m:ben", store="S2"),
    visit("cat-v", OLD, "m:cat"),
    visit("cat-w", "2026-11-20T10:00", "d:cat-phone", store="S2", kind="portal_login"),
    paid("dan-p", "2026-09-10T10:00", "m:dan"),
    visit("dan-w", "2026-10-01T10:00", "w:danmac", store="S2"),
    visit("eve-v", OLD, "m:eve"),
    consent("eve-c1", "2026-09-02T10:00", "m:eve", True),
    consent("eve-c2", "2026-11-01T10:00", "m:eve", False),
    visit("fay-v", OLD, "m:fay"),
    consent("fay-c1", "2026-09-02T10:00", "m:fay", False),
    consent("fay-c2", "2026-11-01T10:00", "m:fay", True),
    visit("gus-v", OLD, "m:gus"),
    complaint("gus-c", "2026-11-20T10:00", None, person="m:gus"),
    visit("hal-p1", OLD, "m:hal", kind="probe"),
    visit("hal-p2", "2026-11-21T10:00", "m:hal", kind="probe"),
    paid("hal-o", OLD, "m:hal", store="S1", status="created"),
    paid("ivy-p", "2026-09-15T10:00", "m:ivy"),
    visit("ivy-probe", "2026-11-21T10:00", "m:ivy", kind="probe"),
    visit("jon-v", OLD, "m:jon"),
    visit("jon-now", NOW, "m:jon"),
    visit("lea-v", OLD, "m:lea"),
    consent("lea-c1", "2026-11-01T10:00", "m:lea", True),
    consent("lea-c2", "2026-11-01T10:00", "m:lea", False),
    visit("kim-v", OLD, "p:kim"),
]
COPIES = [e for e in EVENTS if e["event_id"] in ("c-a", "ann-v2")]  # delivered twice
MERGES = [
    {"from_person": "d:cat-phone", "to_person": "m:cat", "at": wh.ms("2026-11-20T10:05"), "event_id": "cat-login"},
    {"from_person": "w:danmac", "to_person": "m:dan", "at": wh.ms("2026-10-01T10:05"), "event_id": "dan-login"},
]

SPIKE_ROWS = [
    {"store_id": "S1", "window_start": NOW - 15 * MINUTE, "window_end": NOW, "complaints": 3,
     "complaint_event_ids": ["c-z", "c-a", "c-m"]},
    {"store_id": "S3", "window_start": NOW - 15 * MINUTE, "window_end": NOW, "complaints": 4,
     "complaint_event_ids": ["k-0", "k-1", "k-2", "k-3"]},
]


def lapsed(member: str, last: str | int, event_id: str, store: str | None) -> dict:
    return {"person_id": f"m:{member}", "member_id": member,
            "last_activity_at": last if isinstance(last, int) else wh.ms(last), "last_event_id": event_id,
            "evaluated_at": NOW, "store_id": store}


LAPSED_ROWS = [
    lapsed("ann", L, "ann-v2", "S1"),
    lapsed("dan", "2026-10-01T10:00", "dan-w", "S2"),
    lapsed("fay", OLD, "fay-v", "S1"),
    lapsed("ivy", "2026-09-15T10:00", "ivy-p", None),
    lapsed("jon", OLD, "jon-v", "S1"),
]


def load(client) -> None:
    insert(client, "events", EVENTS)
    insert(client, "events", COPIES)
    apply_person_merges(client, MERGES)


@pytest.fixture(scope="module")
def fresh_database(stack, modern_clickhouse):
    yield from wh.databases(stack, modern_clickhouse)


@pytest.fixture(scope="module")
def debian_server(clickhouse_db):
    apply_migrations(clickhouse_db, clickhouse_db.connection.database)
    load(clickhouse_db)
    return clickhouse_db


@pytest.fixture(scope="module")
def current_clickhouse(fresh_database):
    client, name = fresh_database("chdb")
    apply_migrations(client, name)
    load(client)
    return client


@pytest.fixture(params=wh.ENGINES)
def loaded(request):
    return request.getfixturevalue({"clickhouse-18.16": "debian_server", "chdb": "current_clickhouse"}[request.param])


def run(client, rule_type: str, now_ms: int = NOW, **values) -> list[dict]:
    defaults = {"store_complaint_spike": {"window_ms": 15 * MINUTE, "threshold": 3},
                "lapsed_member": {"lapse_ms": 30 * DAY, "complaint_suppress_ms": SEVEN_DAYS}}[rule_type]
    return query_rows(client, render(rule_type, {"now_ms": now_ms, **defaults, **values}))


# --- the SQL, on both engines -------------------------------------------------------------------------

def test_spike_counts_the_window_with_its_start_and_without_its_end(loaded):
    assert run(loaded, "store_complaint_spike") == SPIKE_ROWS


def test_spike_threshold_is_inclusive(loaded):
    assert [r["store_id"] for r in run(loaded, "store_complaint_spike", threshold=4)] == ["S3"]
    assert [r["store_id"] for r in run(loaded, "store_complaint_spike", threshold=2)] == ["S1", "S2", "S3"]


def test_spike_window_slides_with_the_evaluation_time(loaded):
    # One ms later c-z leaves the window and c-y (at the old end) enters it.
    rows = run(loaded, "store_complaint_spike", NOW + 1)
    assert rows[0] == {"store_id": "S1", "window_start": NOW + 1 - 15 * MINUTE, "window_end": NOW + 1,
                       "complaints": 3, "complaint_event_ids": ["c-a", "c-m", "c-y"]}


def test_lapsed_members_by_hand(loaded):
    assert run(loaded, "lapsed_member") == LAPSED_ROWS


def test_lapsed_one_ms_earlier_the_member_at_exactly_days_is_not_lapsed_yet(loaded):
    rows = run(loaded, "lapsed_member", NOW - 1)
    assert [r["person_id"] for r in rows] == ["m:dan", "m:fay", "m:ivy", "m:jon"]


def test_lapsed_one_ms_later_the_next_member_lapses(loaded):
    rows = run(loaded, "lapsed_member", NOW + 1)
    # ben's purchase (L + 1) is now exactly 30 days old; jon's visit at NOW is now before the
    # evaluation time, so jon is active again.
    assert [(r["person_id"], r["last_event_id"]) for r in rows] == [
        ("m:ann", "ann-v2"), ("m:ben", "ben-p"), ("m:dan", "dan-w"), ("m:fay", "fay-v"), ("m:ivy", "ivy-p")]


def test_lapsed_without_complaint_suppression_lists_the_member_who_complained(loaded):
    rows = run(loaded, "lapsed_member", complaint_suppress_ms=0)
    assert [r["person_id"] for r in rows] == ["m:ann", "m:dan", "m:fay", "m:gus", "m:ivy", "m:jon"]


def test_rule_parameters_fill_the_placeholders():
    engine_rules = {spec.name: spec.compile() for spec in RULES.enabled()}
    assert parameters(engine_rules["store_complaint_spike"], NOW) == {
        "now_ms": NOW, "window_ms": 15 * MINUTE, "threshold": 3}
    assert parameters(engine_rules["lapsed_member"], NOW, SEVEN_DAYS) == {
        "now_ms": NOW, "lapse_ms": 30 * DAY, "complaint_suppress_ms": SEVEN_DAYS}
    with pytest.raises(ValueError, match="now_ms must be an integer"):
        render("lapsed_member", {"now_ms": "1; DROP TABLE events", "lapse_ms": 1, "complaint_suppress_ms": 0})


# --- the scan runner on the real server ----------------------------------------------------------------

def expected_ids() -> dict[str, set[str]]:
    return {
        "store_complaint_spike": {trigger_id("store_complaint_spike", ["c-z", "c-a", "c-m"]),
                                  trigger_id("store_complaint_spike", ["k-0", "k-1", "k-2"])},
        "lapsed_member": {trigger_id("lapsed_member", [r["last_event_id"]]) for r in LAPSED_ROWS},
    }


def by_rule(triggers) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for trigger in triggers:
        found.setdefault(trigger.rule, set()).add(trigger.trigger_id)
    return found


@pytest.fixture
def own_server(fresh_database):
    """A database of the test's own on the 18.16 server (the test writes triggers_log)."""
    client, name = fresh_database("clickhouse-18.16")
    apply_migrations(client, name)
    load(client)
    return client


def test_scan_fires_every_rule_and_a_second_scan_publishes_nothing_new(stack, own_server):
    first = evaluate(own_server, stack, RULES, NOW)

    assert by_rule(first.output.triggers) == expected_ids()
    assert first.rows == {"store_complaint_spike": 2, "lapsed_member": 5}
    assert first.output.suppressed == [] and first.output.held == []
    ann = next(t for t in first.output.triggers if t.person_id == "m:ann")
    assert (ann.member_id, ann.store_id, ann.event_time, ann.fired_at, ann.cause_event_ids) == (
        "ann", "S1", NOW, NOW, ("ann-v2",))
    assert ann.payload == {"member_id": "ann", "last_activity_at": L, "days_inactive": 30}

    # What the sink stores from the decision log: the next scan finds them recorded.
    insert(own_server, "triggers_log", trigger_log_records(first.output.triggers, (), NOW + 500))
    second = evaluate(own_server, stack, RULES, NOW)

    assert second.output.triggers == [] and second.output.suppressed == []
    assert {rule: set(ids) for rule, ids in second.already_published.items()} == expected_ids()

    # A minute later: c-z has left S1's window and c-y (12:00) entered it, so S1 has a new spike
    # (c-a, c-m, c-y); S3's is the same one. ben's purchase has become 30 days old (a new lapse);
    # jon's visit at 12:00 makes him active.
    later = evaluate(own_server, stack, RULES, NOW + MINUTE)
    assert by_rule(later.output.triggers) == {
        "store_complaint_spike": {trigger_id("store_complaint_spike", ["c-a", "c-m", "c-y"])},
        "lapsed_member": {trigger_id("lapsed_member", ["ben-p"])}}
    assert later.already_published == {
        "store_complaint_spike": [trigger_id("store_complaint_spike", ["k-0", "k-1", "k-2"])],
        "lapsed_member": sorted(trigger_id("lapsed_member", [e]) for e in ("ann-v2", "dan-w", "fay-v", "ivy-p"))}


def test_scan_skips_ids_the_caller_published_and_can_run_one_rule(stack, debian_server):
    ids = expected_ids()["store_complaint_spike"]
    fresh = evaluate(debian_server, stack, RULES, NOW - 1, names=["store_complaint_spike"])
    # At NOW - 1 the window is [11:44:59.999, 11:59:59.999): c-b in, c-m out; S3 still fires.
    assert fresh.rules == ["store_complaint_spike"]
    assert [t.cause_event_ids for t in fresh.output.triggers] == [("c-a", "c-b", "c-z"), ("k-0", "k-1", "k-2")]
    skipped = evaluate(debian_server, stack, RULES, NOW - 1, names=["store_complaint_spike"],
                       skip_ids=[fresh.output.triggers[0].trigger_id])
    assert [t.trigger_id for t in skipped.output.triggers] == [fresh.output.triggers[1].trigger_id]
    assert fresh.output.triggers[1].trigger_id in ids


def test_scan_in_quiet_hours_alerts_stores_and_holds_marketing(stack, debian_server):
    night = NOW + 4 * 60 * MINUTE  # 16:00Z = 00:00 in Shanghai
    report = evaluate(debian_server, stack, RULES, night, names=["lapsed_member"])

    assert report.output.triggers == [] and report.rows["lapsed_member"] > 0
    assert len(report.output.held) == report.rows["lapsed_member"]
    assert {h.release_at for h in report.output.held} == {wh.ms("2026-11-23T00:00")}  # 08:00 in Shanghai


def test_scan_rejects_a_rule_that_is_not_an_enabled_aggregate_rule(stack, debian_server):
    with pytest.raises(ValueError, match="complaint_recovery: not an enabled aggregate rule of test-rules; "
                                         "enabled aggregate rules: store_complaint_spike, lapsed_member"):
        evaluate(debian_server, stack, RULES, NOW, names=["complaint_recovery"])


def test_scan_with_the_shipped_defaults_returns_a_rule_output(stack, debian_server):
    # threshold 5: no store has a spike; days 30 and 7 days of complaint suppression as above.
    out = scan(debian_server, stack, load_rules(), NOW)
    assert by_rule(out.triggers) == {"lapsed_member": expected_ids()["lapsed_member"]}
    assert out.suppressed == []
