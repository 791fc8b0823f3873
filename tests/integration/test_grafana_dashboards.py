"""The Grafana dashboards (deploy/grafana): generated JSON is current, provisioning is consistent, and
every ClickHouse panel's SQL runs on ClickHouse 18.16 (the Debian server) and on current ClickHouse
(chdb) against the migrated warehouse holding the KPI tests' fixed day, giving the KPI answers.

Grafana itself is not installable here, so its part -- variable interpolation and the ClickHouse
plugin's macros -- is done by `tests/sql/grafana_macros.expand` with concrete values.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from sinks.migrate import apply_migrations
from tests.sql import grafana_macros as grafana
from tests.sql import warehouse_fixture as fixture

ROOT = Path(__file__).resolve().parents[2]
GRAFANA_DIR = ROOT / "deploy" / "grafana"
build = grafana.load_generator()
MODELS = build.dashboards()
CLICKHOUSE_TARGETS = [t for model in MODELS.values() for t in grafana.targets(model, "grafana-clickhouse-datasource")]
DAY = dict(from_ms=fixture.FROM_MS, to_ms=fixture.TO_MS)


@pytest.fixture(scope="module")
def fresh_database(stack, modern_clickhouse):
    yield from fixture.databases(stack, modern_clickhouse)


@pytest.fixture(scope="module")
def debian_server(clickhouse_db):
    apply_migrations(clickhouse_db, clickhouse_db.connection.database)
    fixture.load(clickhouse_db)
    return clickhouse_db


@pytest.fixture(scope="module")
def current_clickhouse(fresh_database):
    client, name = fresh_database("chdb")
    apply_migrations(client, name)
    fixture.load(client)
    return client


@pytest.fixture(params=fixture.ENGINES)
def warehouse(request):
    return request.getfixturevalue({"clickhouse-18.16": "debian_server", "chdb": "current_clickhouse"}[request.param])


def rows(client, sql: str) -> list[dict]:
    data, columns = client.execute(sql, with_column_types=True)
    return [dict(zip([c for c, _ in columns], row)) for row in data]


def panel_sql(title: str) -> str:
    matches = [t["rawSql"] for name, t in CLICKHOUSE_TARGETS if name.startswith(title + " [")]
    assert len(matches) == 1, f"one ClickHouse query titled {title!r}, found {len(matches)}"
    return matches[0]


# --- generated files ---------------------------------------------------------------------------------


def test_committed_json_is_what_the_generator_produces_now():
    committed = {p.name for p in (GRAFANA_DIR / "dashboards").glob("*.json")}

    assert committed == set(MODELS), "a dashboard file without a generator, or the reverse"
    for name, model in MODELS.items():
        assert (GRAFANA_DIR / "dashboards" / name).read_text() == build.render(model), (
            f"{name} is stale: run .venv/bin/python deploy/grafana/build.py and commit it")
    assert build.main(["--check"]) == 0


def test_dashboards_cover_the_report_kpis_live_footfall_triggers_and_pipeline_health():
    model = MODELS["o2o-operations.json"]
    sql = "\n".join(t["rawSql"] for _, t in CLICKHOUSE_TARGETS)
    prom = [t["expr"] for _, t in grafana.targets(model, "prometheus")]

    for kpi in ("footfall", "dwell", "new_vs_repeat", "browse_to_visit", "visit_to_purchase", "funnel", "gmv",
                "share_rate", "complaint_rate", "data_heat", "triggers", "attributed_conversions",
                "store_minutes", "person_profiles"):
        assert build.kpi_sql(kpi) in sql, f"no panel runs sinks/kpis/{kpi}.sql"
    assert [p["title"] for p in model["panels"] if p["type"] == "row"] == [
        "Live", "Footfall", "O2O conversion and funnel", "Revenue and loyalty", "Triggers",
        "Pipeline health (Prometheus)"]
    assert any("o2o_events_accepted_total" in e for e in prom) and any(e.startswith("sum(up{") for e in prom)
    assert all(f'job="{build.WORKER_JOB}"' in e for e in prom)
    ids = [p["id"] for p in model["panels"]]
    assert ids == list(range(1, len(ids) + 1))


def test_provisioning_names_the_datasources_the_dashboards_use():
    sources = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "o2o.yaml").read_text())["datasources"]
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "o2o.yaml").read_text())["providers"]
    by_uid = {s["uid"]: s["type"] for s in sources}

    used = {(t.get("datasource") or p["datasource"])["uid"]: (t.get("datasource") or p["datasource"])["type"]
            for model in MODELS.values() for p in model["panels"] for t in p.get("targets", [])}
    used.update({v["datasource"]["uid"]: v["datasource"]["type"]
                 for model in MODELS.values() for v in model["templating"]["list"]})
    assert used == by_uid == {"clickhouse": "grafana-clickhouse-datasource", "prometheus": "prometheus"}
    clickhouse = next(s for s in sources if s["uid"] == "clickhouse")
    assert clickhouse["jsonData"]["protocol"] == "native" and clickhouse["jsonData"]["port"] == "${O2O_CLICKHOUSE_PORT}"
    assert providers[0]["type"] == "file" and providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_helper_expands_what_grafana_and_the_plugin_expand():
    sql = grafana.expand("SELECT $__timeInterval(t) AS time WHERE $__timeFilter(t) AND ${__from} < ${__to} "
                         "AND s = ${store:sqlstring}", 1_000_500, 2_000_000, store="O'Brien")

    assert sql == ("SELECT toStartOfInterval(toDateTime(t), INTERVAL 60 second) AS time WHERE t >= toDateTime(1000) "
                   "AND t <= toDateTime(2000) AND 1000500 < 2000000 AND s = 'O''Brien'")
    with pytest.raises(AssertionError, match="__rate_interval"):
        grafana.expand("SELECT $__rate_interval", 0, 1)


# --- every ClickHouse query, on both engines ------------------------------------------------------------


@pytest.mark.parametrize("store", [None, "S1"], ids=["all-stores", "store-S1"])
@pytest.mark.parametrize("title,target", CLICKHOUSE_TARGETS, ids=[name for name, _ in CLICKHOUSE_TARGETS])
def test_clickhouse_panel_query_runs(warehouse, title, target, store):
    sql = grafana.expand(target["rawSql"], **DAY, store=store)

    result = rows(warehouse, sql)

    if target["format"] == 0:  # time series: a time column first, in order
        assert result and list(result[0])[0] == "time", title
        assert [r["time"] for r in result] == sorted(r["time"] for r in result)


def test_store_variable_lists_the_stores(warehouse):
    query = MODELS["o2o-operations.json"]["templating"]["list"][0]["query"]

    assert [r["store_id"] for r in rows(warehouse, query)] == ["S1", "S2"]


def test_panels_show_the_kpi_answers_for_the_day(warehouse):
    def one(title: str, store: str | None = None) -> list[dict]:
        return rows(warehouse, grafana.expand(panel_sql(title), **DAY, store=store))

    assert fixture.same_rows(one("Footfall per store"), fixture.EXPECTED["footfall"])
    assert fixture.same_rows(one("Footfall per store", "S1"), fixture.EXPECTED_S1["footfall"])
    assert one("Capture rate") == [{"capture_rate": 0.5}]
    assert one("GMV") == [{"gmv": 260.0}] and one("GMV", "S1") == [{"gmv": 130.0}]
    assert one("GMV, orders and AOV per store and channel") == [
        {"store": "(online)", "channel": "app", "gmv": 110.0, "orders": 2, "aov": 55.0},
        {"store": "(online)", "channel": "web", "gmv": 20.0, "orders": 1, "aov": 20.0},
        {"store": "S1", "channel": "pos", "gmv": 130.0, "orders": 2, "aov": 65.0}]
    assert one("Dwell distribution (visitor visits)") == [
        {"dwell_bucket": b, "visits": 1} for b in ("5-15 min", "15-30 min", "30-60 min")]
    assert one("Funnel, overall") == [{"stage": s, "value": v} for s, v in (
        ("page views", 7), ("browsing persons", 5), ("ordering persons", 4), ("paying persons", 3))]
    assert fixture.same_rows(one("Browsed online → visited a store within 7 days"), [{"conversion_rate": 0.4}])
    assert fixture.same_rows(one("Share rate"), [{"share_rate": 0.6667}])
    assert one("Complaints per 100 paid orders") == [{"complaints_per_100_paid_orders": 20.0}]
    assert one("Members active (data heat)") == [{"heat_pct": 75.0}]
    assert one("Attributed conversions per rule") == [
        {"rule": "browse_then_visit", "attributed_conversions": 2, "attributed_revenue": 70.0},
        {"rule": "welcome_member", "attributed_conversions": 2, "attributed_revenue": 90.0}]
    assert [r["person_id"] for r in one("Top customers by lifetime paid revenue")][:3] == ["m:alice", "m:bob", "m:erin"]

    persons = one("Persons in store per minute")
    assert len(persons) == len(fixture.EXPECTED["store_minutes"]) and {r["unique_persons"] for r in persons} == {1}
    visits = one("Visits by class per minute")
    assert sum(r["visitors"] for r in visits) == 3 and sum(r["passersby"] for r in visits) == 3
    events = one("Events stored per interval, by type")
    # all 33 but a01, a02 (11-20) and d01 (11-01); z01 at exactly the end is in ($__timeFilter includes its end)
    assert sum(r["events"] for r in events) == 30 and len(fixture.EVENTS) == 33
    decisions = one("Trigger decisions per interval")
    assert sorted((r["decision"], r["decisions"]) for r in decisions) == [
        ("browse_then_visit fired", 1), ("browse_then_visit fired", 1), ("browse_then_visit suppressed", 1),
        ("browse_then_visit suppressed", 1), ("complaint_alert fired", 1), ("welcome_member fired", 1)]
    last_write_s = max(r["ingested_at"] for table in (fixture.EVENTS, fixture.DUPLICATES["events"]) for r in table) // 1000
    freshness = one("Warehouse freshness")[0]["seconds_since_last_write"]
    assert abs(freshness - (int(time.time()) - last_write_s)) <= 5


def test_no_panel_query_writes():
    for title, target in CLICKHOUSE_TARGETS:
        first = target["rawSql"].lstrip().split(None, 1)[0].upper()
        assert first == "SELECT", f"{title}: dashboards only read"
    json.dumps(MODELS)  # plain JSON all the way down
