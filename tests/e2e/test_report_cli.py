"""`o2o report` as a user runs it: the installed binary against the real ClickHouse 18.16 server.

The warehouse holds the KPI tests' fixed O2O day (`tests/sql/warehouse_fixture.py`, answers
computed by hand), migrated and loaded through the sink's own writer into a database of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sinks.kpis import REPORT_KPIS
from sinks.migrate import apply_migrations
from tests.conftest import free_port, settings_env
from tests.sql import warehouse_fixture as fixture

O2O = str(Path(sys.executable).parent / "o2o")


@pytest.fixture(scope="module")
def warehouse(clickhouse_db):
    """The module's database on the stack's ClickHouse, migrated and loaded with the fixed day."""
    apply_migrations(clickhouse_db, clickhouse_db.connection.database)
    fixture.load(clickhouse_db)
    return clickhouse_db.connection.database


def o2o(stack, database, *args, **env):
    return subprocess.run([O2O, "report", *args], capture_output=True, text=True, timeout=120,
                          env=settings_env(stack, O2O_CLICKHOUSE_DATABASE=database, **env))


def test_json_report_gives_the_hand_computed_numbers(stack, warehouse):
    run = o2o(stack, warehouse, "--from", fixture.FROM, "--to", fixture.TO, "--json")

    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert list(doc) == ["period", "source", "kpis"]
    assert doc["period"] == {"from": "2026-11-22T00:00:00Z", "to": "2026-11-23T00:00:00Z",
                             "from_ms": fixture.FROM_MS, "to_ms": fixture.TO_MS, "store": None}
    assert doc["source"] == {"clickhouse": f"127.0.0.1:{stack.clickhouse_port}", "database": warehouse}
    assert list(doc["kpis"]) == list(REPORT_KPIS)
    for name in REPORT_KPIS:
        assert fixture.same_rows(doc["kpis"][name], fixture.EXPECTED[name]), (name, doc["kpis"][name])


def test_json_report_for_one_store(stack, warehouse):
    run = o2o(stack, warehouse, "--from", "2026-11-22T08:00:00+08:00", "--to", "2026-11-23T08:00+08:00",
              "--store", "S1", "--json")

    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["period"]["store"] == "S1" and doc["period"]["from_ms"] == fixture.FROM_MS
    for name, rows in fixture.EXPECTED_S1.items():
        assert fixture.same_rows(doc["kpis"][name], rows), (name, doc["kpis"][name])
    assert [r["store_id"] for r in doc["kpis"]["dwell"]] == ["S1"] * 3


def test_a_period_with_nothing_in_it_is_empty_not_an_error(stack, warehouse):
    run = o2o(stack, warehouse, "--from", "2030-01-01", "--to", "2030-01-02", "--json")

    assert run.returncode == 0, run.stderr
    kpis = json.loads(run.stdout)["kpis"]
    assert kpis["footfall"] == [] and kpis["gmv"] == [] and kpis["triggers"] == []
    assert kpis["browse_to_visit"] == [{"browsing_persons": 0, "visiting_persons": 0, "conversion_rate": None}]
    assert kpis["share_rate"] == [{"sharing_persons": 0, "paying_persons": 0, "share_rate": None}]


def test_readable_report_shows_every_kpi_group_with_its_numbers(stack, warehouse):
    run = o2o(stack, warehouse, "--from", fixture.FROM, "--to", fixture.TO)

    assert run.returncode == 0, run.stderr
    out = run.stdout
    lines = out.splitlines()

    def row(first: str, *cells: str) -> None:
        assert any(line.split("│")[1:2] and line.split("│")[1].strip() == first
                   and all(cell in line for cell in cells) for line in lines), (first, cells, out)

    assert "2026-11-22T00:00:00Z → 2026-11-23T00:00:00Z" in out and "all stores" in out
    for title in ("Footfall", "Dwell distribution", "New vs repeat visitors", "browsed online, then visited",
                  "store visit → paid purchase", "Funnel", "Paid revenue (GMV)", "Loyalty",
                  "Triggers and attributed conversions"):
        assert title in out, title
    row("S1", "3", "1", "75.0 %")                                   # footfall
    row("S2", "0", "2", "0.0 %")
    row("all", "3", "3", "50.0 %")                                  # footfall total
    row("5", "2", "40.0 %")                                         # browse -> visit
    row("S1", "3", "2", "66.7 %")                                   # visit -> purchase
    row("overall", "7", "5", "4", "3", "80.0 %", "75.0 %", "60.0 %")  # funnel
    row("campaign", "xmas", "3", "66.7 %", "100.0 %")
    row("(online)", "app", "110.00", "2", "55.00")                  # GMV
    row("S1", "pos", "130.00", "2", "65.00")
    row("all", "260.00", "5", "52.00")
    row("Share rate (persons who shared / persons who paid)", "66.7 %", "2 of 3")
    row("Complaint rate (complaints per 100 paid orders)", "20.00", "1 complaint(s), 5 paid order(s)")
    row("Data heat (active members / members seen)", "75.0 %", "3 of 4")
    row("browse_then_visit", "marketing", "2", "2", "70.00")       # triggers + attribution
    row("welcome_member", "marketing", "1", "0", "2", "90.00")
    row("complaint_alert", "service", "1", "0", "0", "0.00")


def test_bad_dates_are_refused_with_the_accepted_forms(stack, warehouse):
    bad = o2o(stack, warehouse, "--from", "22/11/2026")
    empty = o2o(stack, warehouse, "--from", "2026-11-23", "--to", "2026-11-22")

    assert bad.returncode == 2 and "--from '22/11/2026' is not an ISO-8601 date" in bad.stderr
    assert "2026-11-22T10:00:00+08:00" in bad.stderr
    assert empty.returncode == 2 and "--from must be before --to" in empty.stderr


def test_clickhouse_down_names_the_server_and_the_way_to_start_it(stack, warehouse):
    port = free_port()
    run = o2o(stack, warehouse, "--json", O2O_CLICKHOUSE_PORT=str(port))

    assert run.returncode == 1 and run.stdout == ""
    assert f"cannot reach ClickHouse at 127.0.0.1:{port}" in run.stderr and "o2o stack up" in run.stderr


def test_a_database_without_the_schema_says_to_run_init(stack, warehouse):
    run = o2o(stack, "no_such_warehouse")

    assert run.returncode == 1
    assert "no warehouse schema in database 'no_such_warehouse'" in run.stderr and "o2o init" in run.stderr
