"""Dashboards as code: generates `deploy/grafana/dashboards/*.json` with grafana-foundation-sdk.

    .venv/bin/python deploy/grafana/build.py           # write the JSON files
    .venv/bin/python deploy/grafana/build.py --check   # exit 1 if the committed files are not current

Edit this file, never the JSON; run it and commit both (a test checks they agree). The KPI panels
take their SQL from `sinks/kpis/*.sql`, the same files `o2o report` runs, with the placeholders
filled by Grafana variables: `{from_ms}` -> `${__from}`, `{to_ms}` -> `${__to}` (the time picker,
epoch ms) and `{store}` -> `${store:sqlstring}` (the Store variable, `''` = all stores). Other
ClickHouse panels use the plugin's macros (`$__timeFilter(col)`, `$__interval_s`). The
pipeline-health row queries Prometheus (job `o2o-worker`, deploy/prometheus/prometheus.yml).

Data sources are referenced by the uids that `provisioning/datasources/o2o.yaml` gives them.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: `sinks` is importable
    sys.path.insert(0, str(ROOT))

from grafana_foundation_sdk.builders import barchart, stat, table, timeseries  # noqa: E402
from grafana_foundation_sdk.builders import prometheus as prom  # noqa: E402
from grafana_foundation_sdk.builders.common import ReduceDataOptions, VizLegendOptions  # noqa: E402
from grafana_foundation_sdk.builders.dashboard import Dashboard, QueryVariable, Row  # noqa: E402
from grafana_foundation_sdk.cog import builder as cogbuilder  # noqa: E402
from grafana_foundation_sdk.cog import variants as cogvariants  # noqa: E402
from grafana_foundation_sdk.cog.encoder import JSONEncoder  # noqa: E402
from grafana_foundation_sdk.models.common import LegendDisplayMode, LegendPlacement  # noqa: E402
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh  # noqa: E402

from sinks.kpis import render_with  # noqa: E402

DASHBOARDS_DIR = HERE / "dashboards"
CLICKHOUSE = DataSourceRef(type_val="grafana-clickhouse-datasource", uid="clickhouse")
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")
WORKER_JOB = "o2o-worker"
# The KPI files' placeholders, as Grafana variables.
GRAFANA_PARAMETERS = {"from_ms": "${__from}", "to_ms": "${__to}", "store": "${store:sqlstring}"}
STORE_FILTER = "(${store:sqlstring} = '' OR store_id = ${store:sqlstring})"


def time_bucket(column: str) -> str:
    """The start of the panel's interval holding `column` (a DateTime). The plugin's $__timeInterval
    expands to toStartOfInterval, which ClickHouse 18.16 lacks; this runs on 18.16 and current."""
    return f"toDateTime(intDiv(toUInt32({column}), $__interval_s) * $__interval_s, 'UTC')"


def kpi_sql(name: str) -> str:
    """A KPI file's query with Grafana's time range and Store variable in its placeholders."""
    return render_with(name, GRAFANA_PARAMETERS)


# --- ClickHouse queries (the plugin has no builder in the SDK: its query model, as the plugin saves it) ---

class ClickHouseQuery(cogvariants.Dataquery):
    """A raw-SQL query of grafana-clickhouse-datasource (v4): format 1 = table, 0 = time series."""

    def __init__(self, sql: str, time_series: bool = False, ref_id: str = "A"):
        self.sql = sql
        self.time_series = time_series
        self.ref_id = ref_id

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": CLICKHOUSE,
            "editorType": "sql",
            "format": 0 if self.time_series else 1,
            "queryType": "timeseries" if self.time_series else "table",
            "rawSql": self.sql,
            "refId": self.ref_id,
        }


class ClickHouse(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, sql: str, time_series: bool = False, ref_id: str = "A"):
        self._query = ClickHouseQuery(sql.strip(), time_series, ref_id)

    def build(self) -> ClickHouseQuery:
        return self._query


def promql(expr: str, legend: str = "", ref_id: str = "A") -> prom.Dataquery:
    query = prom.Dataquery().expr(expr).ref_id(ref_id).range()
    return query.legend_format(legend) if legend else query


# --- panels ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Size:
    w: int
    h: int


def _sized(panel: Any, size: Size) -> Any:
    return panel.span(size.w).height(size.h)


def ch_table(title: str, sql: str, description: str, size: Size = Size(12, 8), **units: str) -> table.Panel:
    panel = _sized(table.Panel().title(title).description(description).datasource(CLICKHOUSE)
                   .with_target(ClickHouse(sql)), size)
    for field, unit in units.items():
        panel = panel.override_by_name(field, [{"id": "unit", "value": unit}])
    return panel


def ch_stat(title: str, sql: str, description: str, unit: str, size: Size = Size(4, 5), decimals: int = 1) -> stat.Panel:
    return _sized(stat.Panel().title(title).description(description).datasource(CLICKHOUSE).unit(unit)
                  .decimals(decimals).reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
                  .with_target(ClickHouse(sql)), size)


def ch_series(title: str, sql: str, description: str, unit: str = "short", size: Size = Size(12, 8)) -> timeseries.Panel:
    return _sized(timeseries.Panel().title(title).description(description).datasource(CLICKHOUSE).unit(unit)
                  .legend(VizLegendOptions().display_mode(LegendDisplayMode.LIST).placement(LegendPlacement.BOTTOM)
                          .show_legend(True))
                  .with_target(ClickHouse(sql, time_series=True)), size)


def ch_bars(title: str, sql: str, description: str, x_field: str, size: Size = Size(12, 8)) -> barchart.Panel:
    return _sized(barchart.Panel().title(title).description(description).datasource(CLICKHOUSE).x_field(x_field)
                  .with_target(ClickHouse(sql)), size)


def prom_series(title: str, description: str, *queries: prom.Dataquery, unit: str = "short",
                size: Size = Size(8, 8)) -> timeseries.Panel:
    panel = _sized(timeseries.Panel().title(title).description(description).datasource(PROMETHEUS).unit(unit), size)
    for query in queries:
        panel = panel.with_target(query)
    return panel


def store_variable() -> QueryVariable:
    return (QueryVariable("store").label("Store").datasource(CLICKHOUSE)
            .query("SELECT DISTINCT store_id FROM store_minute_stats WHERE store_id != '' ORDER BY store_id")
            .include_all(True).all_value("''").refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .description("One store, or All (every store and the online channels)."))


def kpis_dashboard() -> Dashboard:
    rate = "percentunit"
    dashboard = (
        Dashboard("O2O operations").uid("o2o-operations").tags(["o2o"]).time("now-24h", "now").refresh("30s")
        .timezone("browser").editable()
        .description("O2O KPIs from ClickHouse (the SQL of sinks/kpis/, the numbers of `o2o report`) and the "
                     "workers' health from Prometheus. Generated by deploy/grafana/build.py; do not edit here.")
        .with_variable(store_variable())
    )

    dashboard = dashboard.with_row(Row("Live"))
    dashboard = (
        dashboard
        .with_panel(ch_series(
            "Persons in store per minute",
            f"SELECT minute AS time, store_id, unique_persons FROM ({kpi_sql('store_minutes')}) ORDER BY time",
            "Distinct persons with any event at each store per minute (store_minute_stats, merged identities "
            "counted once). Live footfall: Wi-Fi check-ins count the minute they happen."))
        .with_panel(ch_series(
            "Visits by class per minute",
            "SELECT minute AS time, sum(visitors) AS visitors, sum(passersby) AS passersby "
            f"FROM ({kpi_sql('store_minutes')}) GROUP BY time ORDER BY time",
            "Closed store visits at their start minute: visitors (dwell and signal over the thresholds) and "
            "passersby."))
        .with_panel(ch_series(
            "Events stored per interval, by type",
            f"SELECT {time_bucket('occurred_at')} AS time, event_type, uniqExact(event_id) AS events FROM events "
            f"WHERE $__timeFilter(occurred_at) AND {STORE_FILTER} GROUP BY time, event_type ORDER BY time",
            "Accepted events in the warehouse by event time (copies delivered twice count once)."))
        .with_panel(ch_stat(
            "Warehouse freshness",
            "SELECT toUnixTimestamp(now()) - intDiv(max(ingested_at_ms), 1000) AS seconds_since_last_write FROM events",
            "Seconds since the sink last wrote an event. Grows when the pipeline or the sink stalls.", "s",
            Size(6, 8), decimals=0))
        .with_panel(ch_stat(
            "Members active (data heat)", f"SELECT heat_pct FROM ({kpi_sql('data_heat')})",
            "Members active in the period / members seen up to its end (sinks/kpis/data_heat.sql).", "percent",
            Size(6, 8)))
    )

    dashboard = dashboard.with_row(Row("Footfall"))
    dashboard = (
        dashboard
        .with_panel(ch_table("Footfall per store", kpi_sql("footfall"),
                             "Visitors, passersby and capture rate per store (sinks/kpis/footfall.sql).",
                             Size(9, 8), capture_rate=rate))
        .with_panel(ch_stat(
            "Capture rate",
            "SELECT if(sum(visitors) + sum(passersby) = 0, NULL, sum(visitors) / (sum(visitors) + sum(passersby))) "
            f"AS capture_rate FROM ({kpi_sql('footfall')})",
            "Visitors / (visitors + passersby), all selected stores.", rate, Size(3, 8)))
        .with_panel(ch_bars(
            "Dwell distribution (visitor visits)",
            f"SELECT dwell_bucket, sum(visits) AS visits FROM ({kpi_sql('dwell')}) "
            "GROUP BY dwell_bucket, bucket_from_s ORDER BY bucket_from_s",
            "Visitor visits by time in store (sinks/kpis/dwell.sql).", "dwell_bucket", Size(6, 8)))
        .with_panel(ch_table("New vs repeat visitors", kpi_sql("new_vs_repeat"),
                             "Persons visiting each store: first visit ever in the period (new) or earlier "
                             "(repeat) (sinks/kpis/new_vs_repeat.sql).", Size(6, 8)))
    )

    dashboard = dashboard.with_row(Row("O2O conversion and funnel"))
    dashboard = (
        dashboard
        .with_panel(ch_stat(
            "Browsed online → visited a store within 7 days",
            f"SELECT conversion_rate FROM ({kpi_sql('browse_to_visit')})",
            "Persons who browsed in the period and started a visitor visit within 7 days "
            "(sinks/kpis/browse_to_visit.sql).", rate, Size(6, 8)))
        .with_panel(ch_table("Store visit → paid purchase", kpi_sql("visit_to_purchase"),
                             "Visitor visits followed by a paid purchase at the store (sinks/kpis/visit_to_purchase.sql).",
                             Size(6, 8), conversion_rate=rate))
        .with_panel(ch_bars(
            "Funnel, overall",
            "SELECT tupleElement(step, 1) AS stage, tupleElement(step, 2) AS value "
            f"FROM ({kpi_sql('funnel')}) "
            "ARRAY JOIN [tuple('page views', page_views), tuple('browsing persons', browsing_persons), "
            "tuple('ordering persons', ordering_persons), tuple('paying persons', paying_persons)] AS step "
            "WHERE scope = 'all'",
            "Page views → unique browsing persons → persons with an order → persons with a paid order.",
            "stage", Size(12, 8)))
        .with_panel(ch_table("Funnel per campaign", kpi_sql("funnel"),
                             "Overall (scope all) and per campaign, with rates (sinks/kpis/funnel.sql).",
                             Size(24, 8), order_rate=rate, paid_rate=rate, conversion_rate=rate))
    )

    dashboard = dashboard.with_row(Row("Revenue and loyalty"))
    dashboard = (
        dashboard
        .with_panel(ch_table(
            "GMV, orders and AOV per store and channel",
            "SELECT if(store_id = '', '(online)', store_id) AS store, channel, gmv_cents / 100 AS gmv, orders, "
            f"aov_cents / 100 AS aov FROM ({kpi_sql('gmv')})",
            "Paid purchases: revenue, distinct orders, average order value (sinks/kpis/gmv.sql).", Size(9, 8)))
        .with_panel(ch_stat("GMV", f"SELECT sum(gmv_cents) / 100 AS gmv FROM ({kpi_sql('gmv')})",
                            "Paid revenue in the period.", "short", Size(3, 8), decimals=2))
        .with_panel(ch_stat("Share rate", f"SELECT share_rate FROM ({kpi_sql('share_rate')})",
                            "Persons who shared / persons who paid (sinks/kpis/share_rate.sql).", rate, Size(3, 8)))
        .with_panel(ch_stat("Complaints per 100 paid orders",
                            f"SELECT complaints_per_100_paid_orders FROM ({kpi_sql('complaint_rate')})",
                            "sinks/kpis/complaint_rate.sql", "short", Size(3, 8), decimals=2))
        .with_panel(ch_table(
            "Top customers by lifetime paid revenue",
            "SELECT person_id, lifetime_paid_cents / 100 AS lifetime_paid, visits, last_store, consent_marketing "
            f"FROM ({kpi_sql('person_profiles')}) ORDER BY lifetime_paid DESC, person_id LIMIT 20",
            "Persons seen in the period, lifetime values (sinks/kpis/person_profiles.sql).", Size(6, 8)))
    )

    dashboard = dashboard.with_row(Row("Triggers"))
    dashboard = (
        dashboard
        .with_panel(ch_series(
            "Trigger decisions per interval",
            f"SELECT {time_bucket('fired_at')} AS time, concat(rule, ' ', outcome) AS decision, count() AS decisions "
            f"FROM triggers_log FINAL WHERE $__timeFilter(fired_at) AND {STORE_FILTER} "
            "GROUP BY time, decision ORDER BY time",
            "Triggers fired and suppressed per rule over time (triggers_log)."))
        .with_panel(ch_table("Fired and suppressed per rule", kpi_sql("triggers"),
                             "sinks/kpis/triggers.sql", Size(6, 8)))
        .with_panel(ch_table(
            "Attributed conversions per rule",
            "SELECT rule, attributed_conversions, attributed_revenue_cents / 100 AS attributed_revenue "
            f"FROM ({kpi_sql('attributed_conversions')})",
            "Paid purchases within 48 h after a marketing trigger, last touch (sinks/kpis/attributed_conversions.sql).",
            Size(6, 8)))
    )
    job = f'job="{WORKER_JOB}"'
    dashboard = (
        dashboard
        .with_panel(prom_series(
            "Triggers published and suppressed per second (live)", "From the workers, by rule (and reason).",
            promql(f"sum by (rule) (rate(o2o_triggers_published_total{{{job}}}[$__rate_interval]))", "published: {{rule}}"),
            promql(f"sum by (rule, reason) (rate(o2o_triggers_suppressed_total{{{job}}}[$__rate_interval]))",
                   "suppressed: {{rule}} ({{reason}})", "B"),
            unit="ops", size=Size(12, 8)))
        .with_panel(prom_series(
            "Trigger latency p99", "From the causing event's ingress append to the trigger's acknowledged append.",
            promql("histogram_quantile(0.99, sum by (le, rule) "
                   f"(rate(o2o_trigger_latency_seconds_bucket{{{job}}}[$__rate_interval])))", "{{rule}}"),
            unit="s", size=Size(12, 8)))
    )

    dashboard = dashboard.with_row(Row("Pipeline health (Prometheus)"))
    dashboard = (
        dashboard
        .with_panel(_sized(stat.Panel().title("Workers up").datasource(PROMETHEUS)
                           .description("Workers Prometheus scrapes successfully (deploy/prometheus).")
                           .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
                           .with_target(promql(f"sum(up{{{job}}})", "workers")), Size(4, 8)))
        .with_panel(prom_series(
            "Events accepted per second", "By event type, all workers.",
            promql(f"sum by (event_type) (rate(o2o_events_accepted_total{{{job}}}[$__rate_interval]))", "{{event_type}}"),
            unit="ops", size=Size(10, 8)))
        .with_panel(prom_series(
            "Dead letters and duplicates per second", "Rejected inputs by reason; duplicates dropped by event id.",
            promql(f"sum by (reason) (rate(o2o_dead_letters_total{{{job}}}[$__rate_interval]))", "dead letter: {{reason}}"),
            promql(f"sum(rate(o2o_duplicates_total{{{job}}}[$__rate_interval]))", "duplicates", "B"),
            unit="ops", size=Size(10, 8)))
        .with_panel(prom_series(
            "Journey: events, late events, merges per second", "The single-writer journey stage.",
            promql(f"sum(rate(o2o_journey_events_total{{{job}}}[$__rate_interval]))", "events"),
            promql(f"sum(rate(o2o_late_events_total{{{job}}}[$__rate_interval]))", "late", "B"),
            promql(f"sum(rate(o2o_person_merges_total{{{job}}}[$__rate_interval]))", "person merges", "C"),
            unit="ops"))
        .with_panel(prom_series(
            "Sessions and visits closed per second", "Final versions published.",
            promql(f"sum(rate(o2o_sessions_closed_total{{{job}}}[$__rate_interval]))", "sessions"),
            promql(f"sum by (class) (rate(o2o_visits_closed_total{{{job}}}[$__rate_interval]))", "visits: {{class}}", "B"),
            unit="ops"))
        .with_panel(prom_series(
            "Where batch time goes", "Seconds per second spent in each agent step.",
            promql(f"sum by (stage, step) (rate(o2o_step_seconds_total{{{job}}}[$__rate_interval]))", "{{stage}} {{step}}"),
            unit="s"))
        .with_panel(prom_series(
            "Sink: rows stored per second", "ClickHouse rows written by the sink, by table.",
            promql(f"sum by (table) (rate(o2o_sink_rows_total{{{job}}}[$__rate_interval]))", "{{table}}"),
            unit="ops"))
        .with_panel(prom_series(
            "Sink: freshness p99", "From a record's append to its rows being queryable in ClickHouse.",
            promql("histogram_quantile(0.99, sum by (le, table) "
                   f"(rate(o2o_sink_freshness_seconds_bucket{{{job}}}[$__rate_interval])))", "{{table}}"),
            unit="s"))
        .with_panel(prom_series(
            "Sink: insert errors and retries", "Failed inserts per second (retried) and tables in backoff.",
            promql(f"sum by (table, error) (rate(o2o_sink_insert_errors_total{{{job}}}[$__rate_interval]))",
                   "errors: {{table}} {{error}}"),
            promql(f"max by (table) (o2o_sink_retrying{{{job}}})", "retrying: {{table}}", "B")))
        .with_panel(prom_series(
            "Records per batch (p95)", "Kafka records per agent batch.",
            promql(f"histogram_quantile(0.95, sum by (le, stage) (rate(o2o_batch_records_bucket{{{job}}}[$__rate_interval])))",
                   "{{stage}}"), size=Size(8, 8)))
        .with_panel(prom_series(
            "Worker CPU", "CPU seconds per second per worker.",
            promql(f"rate(process_cpu_seconds_total{{{job}}}[$__rate_interval])", "{{instance}}"),
            unit="percentunit", size=Size(8, 8)))
        .with_panel(prom_series(
            "Worker memory", "Resident memory per worker.",
            promql(f"process_resident_memory_bytes{{{job}}}", "{{instance}}"), unit="bytes", size=Size(8, 8)))
    )
    return dashboard


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON model, as Grafana's file provisioning reads it."""
    model = json.loads(json.dumps(kpis_dashboard().build(), cls=JSONEncoder))
    for number, panel in enumerate(model["panels"], 1):  # stable ids: links and Grafana's state use them
        panel["id"] = number
    return {"o2o-operations.json": model}


def render(model: dict[str, Any]) -> str:
    return json.dumps(model, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files; write nothing")
    args = parser.parse_args(argv)
    stale = []
    for name, model in dashboards().items():
        path = DASHBOARDS_DIR / name
        text = render(model)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"not current: {', '.join(stale)}; run `.venv/bin/python deploy/grafana/build.py` and commit",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
