"""Every KPI query against a hand-computed answer, on ClickHouse 18.16 and current ClickHouse (chdb).

The dataset (`tests/sql/warehouse_fixture.py`) is one O2O day with a repeat and a new visitor, an
anonymous device identified as a member mid-day, late events, boundary events at both ends of the
period, trigger decisions and copies of records delivered twice. It is inserted through the sink's
own writer (`rows_for` inserts, `apply_person_merges`), the same way on both engines.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from sinks.kpis import REPORT_KPIS, Period, load_kpis, run_kpi, run_report
from sinks.migrate import apply_migrations
from sinks.writer import apply_person_merges, insert
from tests.sql import warehouse_fixture as fixture

ENGINES = fixture.ENGINES
PERIOD = Period.parse(fixture.FROM, fixture.TO)
S1 = Period.parse(fixture.FROM, fixture.TO, store="S1")


@pytest.fixture(scope="module")
def fresh_database(stack, modern_clickhouse):
    yield from fixture.databases(stack, modern_clickhouse)


@pytest.fixture(scope="module")
def debian_server(clickhouse_db):
    """The Debian 18.16 server: the module's database, migrated and loaded."""
    apply_migrations(clickhouse_db, clickhouse_db.connection.database)
    fixture.load(clickhouse_db)
    return clickhouse_db


@pytest.fixture(scope="module")
def current_clickhouse(fresh_database):
    client, name = fresh_database("chdb")
    apply_migrations(client, name)
    fixture.load(client)
    return client


@pytest.fixture(params=ENGINES)
def loaded(request):
    """The loaded dataset on each engine in turn."""
    return request.getfixturevalue({"clickhouse-18.16": "debian_server", "chdb": "current_clickhouse"}[request.param])


def expected(name: str) -> list[dict]:
    return fixture.expected_store_minutes() if name == "store_minutes" else fixture.EXPECTED[name]


def test_every_kpi_file_has_a_hand_computed_answer():
    assert set(load_kpis()) == set(fixture.EXPECTED)


@pytest.mark.parametrize("name", sorted(fixture.EXPECTED))
def test_kpi_gives_the_hand_computed_answer(loaded, name):
    rows = run_kpi(loaded, name, PERIOD)

    assert fixture.same_rows(rows, expected(name)), rows


@pytest.mark.parametrize("name", sorted(fixture.EXPECTED_S1))
def test_kpi_for_one_store_counts_only_that_store(loaded, name):
    rows = run_kpi(loaded, name, S1)

    assert fixture.same_rows(rows, fixture.EXPECTED_S1[name]), rows


def test_report_runs_every_report_kpi_in_order(loaded):
    report = run_report(loaded, PERIOD)

    assert list(report) == list(REPORT_KPIS)
    assert all(fixture.same_rows(rows, fixture.EXPECTED[name]) for name, rows in report.items())


def test_period_end_is_exclusive_and_start_inclusive(loaded):
    # b01 (w:bobmac -> m:bob) is at exactly 00:00 on the 22nd; z01 (m:frank) at exactly 00:00 on the 23rd.
    first_minute = Period.parse("2026-11-22T00:00:00Z", "2026-11-22T00:01:00+00:00")
    up_to_the_end = Period.parse("2026-11-22", "2026-11-23T00:00:00.001")

    assert run_kpi(loaded, "footfall", first_minute) == [
        {"store_id": "S2", "visitors": 0, "passersby": 1, "capture_rate": 0.0}]
    assert run_kpi(loaded, "data_heat", up_to_the_end) == [{"active_members": 4, "members": 5, "heat_pct": 80.0}]


def test_an_offset_in_the_period_shifts_it(loaded):
    # 2026-11-22T18:00+08:00 is 10:00Z: from then on Bob's visit (10:30Z) and later ones.
    rows = run_kpi(loaded, "footfall", Period.parse("2026-11-22T18:00+08:00", "2026-11-23T08:00+08:00", "S1"))

    assert rows == [{"store_id": "S1", "visitors": 3, "passersby": 1, "capture_rate": 0.75}]


def test_times_keep_their_milliseconds(loaded):
    assert loaded.execute("SELECT occurred_at_ms, occurred_at FROM events FINAL WHERE event_id = 'a09'") == [
        (fixture.ms("12:20:00.750"), datetime(2026, 11, 22, 12, 20, 0, tzinfo=timezone.utc))]


def test_late_events_are_stored_flagged_and_counted_in_their_own_period(loaded):
    # (data_heat and gmv count them on the 22nd: see their expected answers)
    assert loaded.execute(
        "SELECT event_id, is_late, ingested_at >= toDateTime('2026-11-23 02:00:00', 'UTC') FROM events FINAL "
        "WHERE is_late = 1 ORDER BY event_id") == [("e01", 1, 1), ("e02", 1, 1)]


def test_sessions_read_as_their_latest_version(loaded):
    rows = loaded.execute(
        "SELECT session_id, state, person_id, revenue_cents FROM sessions FINAL "
        "WHERE state != 'absorbed' ORDER BY session_id")

    assert rows == [("s-a1", "closed", "m:alice", 10_000), ("s-b1", "open", "m:bob", 8_000),
                    ("s-c1", "closed", "p:carol", 0)]


def test_trigger_log_keeps_suppressions_and_payloads(loaded):
    rows = loaded.execute(
        "SELECT trigger_id, outcome, reason, published_at_ms, cause_event_ids FROM triggers_log FINAL "
        "WHERE rule = 'browse_then_visit' AND outcome = 'suppressed' ORDER BY reason")
    alert = loaded.execute(
        "SELECT kind, payload_record, payload_keys, payload_values, payload_json FROM triggers_log FINAL "
        "WHERE trigger_id = 't3'")

    assert [r[1:4] for r in rows] == [("suppressed", "complaint_suppression", None), ("suppressed", "consent", None)]
    assert rows[0][0].startswith("s:") and rows[1][0] == "tr-s2" and rows[1][4] == ["c01"]
    assert alert == [("service", "ComplaintRecoveryPayload", ["complaint_id", "severity", "store_id"],
                      ["cs-1", "high", "S1"], '{"complaint_id":"cs-1","severity":"high","store_id":"S1"}')]


def test_person_map_points_every_merged_person_at_the_final_one(loaded):
    assert loaded.execute("SELECT person_id, merged_into FROM person_map ORDER BY person_id") == [
        ("d:bob-phone", "m:bob"), ("w:bobmac", "m:bob")]


# --- (d) duplicates ------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_every_record_delivered_twice_changes_no_kpi(fresh_database, engine):
    client, name = fresh_database(engine)
    apply_migrations(client, name)
    fixture.load(client, duplicates=False)
    once = {kpi: run_kpi(client, kpi, PERIOD) for kpi in load_kpis()}

    for table, records in (("events", fixture.EVENTS), ("store_visits", fixture.VISITS),
                           ("sessions", fixture.SESSIONS), ("triggers_log", fixture.TRIGGERS)):
        insert(client, table, records)
    apply_person_merges(client, fixture.MERGES)
    twice = {kpi: run_kpi(client, kpi, PERIOD) for kpi in load_kpis()}

    assert client.execute("SELECT count() FROM events") == [(2 * len(fixture.EVENTS),)]  # both copies stored
    assert twice == once
    assert all(fixture.same_rows(rows, expected(kpi)) for kpi, rows in twice.items())


# --- (e) identity re-pointing ----------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_anonymous_history_counts_under_the_member_after_the_merge(fresh_database, engine):
    client, name = fresh_database(engine)
    apply_migrations(client, name)
    fixture.load(client, merges=False)
    for kpi, rows in fixture.EXPECTED_BEFORE_MERGES.items():
        assert fixture.same_rows(run_kpi(client, kpi, PERIOD), rows), kpi
    before_funnel = run_kpi(client, "funnel", PERIOD)[0]
    before_profiles = {r["person_id"] for r in run_kpi(client, "person_profiles", PERIOD)}
    assert (before_funnel["browsing_persons"], before_funnel["paying_persons"]) == (6, 3)
    assert {"w:bobmac", "d:bob-phone", "m:bob"} <= before_profiles

    apply_person_merges(client, fixture.MERGES)

    for kpi in ("browse_to_visit", "attributed_conversions", "funnel", "person_profiles", "store_minutes",
                "new_vs_repeat", "data_heat", "share_rate"):
        assert fixture.same_rows(run_kpi(client, kpi, PERIOD), expected(kpi)), kpi


@pytest.mark.parametrize("engine", ENGINES)
def test_merges_applied_in_either_order_give_the_same_closure(fresh_database, engine):
    client, name = fresh_database(engine)
    apply_migrations(client, name)

    apply_person_merges(client, fixture.MERGES[1:])  # d:bob-phone -> m:bob first
    apply_person_merges(client, fixture.MERGES[:1])  # then w:bobmac -> d:bob-phone
    apply_person_merges(client, fixture.MERGES)      # a replay changes nothing

    assert client.execute("SELECT person_id, merged_into FROM person_map ORDER BY person_id") == [
        ("d:bob-phone", "m:bob"), ("w:bobmac", "m:bob")]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_chain_of_merges_in_one_batch_points_at_the_end_of_the_chain(fresh_database, engine):
    client, name = fresh_database(engine)
    apply_migrations(client, name)
    chain = [{"from_person": a, "to_person": b, "at": i, "event_id": f"e{i}"}
             for i, (a, b) in enumerate([("w:2", "w:1"), ("w:1", "d:1"), ("w:3", "w:2"), ("d:1", "m:1")])]

    apply_person_merges(client, chain)

    assert client.execute("SELECT person_id, merged_into FROM person_map ORDER BY person_id") == [
        ("d:1", "m:1"), ("w:1", "m:1"), ("w:2", "m:1"), ("w:3", "m:1")]
