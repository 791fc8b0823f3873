"""`o2o report`: the KPIs of a period from ClickHouse, as one JSON document or as readable tables.

    period = Period.parse("2026-11-22", "2026-11-23", store=None)
    doc = fetch_report(settings, period)      # {"period": {...}, "source": {...}, "kpis": {...}}
    print_report(doc, console)                # rich tables grouped by KPI

The numbers come from the KPI files in `sinks/kpis/` (`sinks.kpis.run_report`), nothing is computed
here but totals of what those queries return and the formatting. The JSON document (documented in
the README, section "o2o report") has stable keys: `period`, `source` and `kpis`; `kpis` holds one
list of rows per KPI in `REPORT_KPIS` order, always present (empty when nothing happened), each
row keyed by the columns its SQL file documents.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from sinks.errors import explain
from sinks.kpis import REPORT_KPIS, Period, run_report


class ReportError(Exception):
    """ClickHouse could not answer; the message names the server and what to do."""


def iso(epoch_ms: int) -> str:
    """UTC ISO-8601 with a Z, milliseconds only when there are some."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
    text = moment.isoformat(timespec="milliseconds" if epoch_ms % 1000 else "seconds")
    return text.replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """JSON-safe: NaN and infinities (a rate over nothing) become null; dates ISO text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def report_document(settings: Any, period: Period, kpis: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "period": {"from": iso(period.from_ms), "to": iso(period.to_ms), "from_ms": period.from_ms,
                   "to_ms": period.to_ms, "store": period.store},
        "source": {"clickhouse": f"{settings.clickhouse_host}:{settings.clickhouse_port}",
                   "database": settings.clickhouse_database},
        "kpis": {name: [{k: _plain(v) for k, v in row.items()} for row in kpis.get(name, [])]
                 for name in REPORT_KPIS},
    }


def fetch_report(settings: Any, period: Period) -> dict[str, Any]:
    """Run every report KPI on the warehouse that `settings` name; raise ReportError saying what to do."""
    from clickhouse_driver import Client

    client = Client(**settings.clickhouse_client_kwargs(), connect_timeout=5, send_receive_timeout=300)
    try:
        kpis = run_report(client, period)
    except Exception as exc:
        message = explain(exc, settings, "a KPI query")
        if message is None:
            raise
        raise ReportError(message) from None
    finally:
        client.disconnect()
    return report_document(settings, period, kpis)


# --- readable output --------------------------------------------------------------------------------

def pct(rate: float | None, digits: int = 1) -> str:
    return "–" if rate is None else f"{rate * 100:.{digits}f} %"


def money(cents: float | int | None) -> str:
    return "–" if cents is None else f"{cents / 100:,.2f}"


def count(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def _store(store_id: str) -> str:
    return store_id or "(online)"


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def print_report(doc: dict[str, Any], console: Any) -> None:
    """The report as rich tables, one group per KPI, in the order of the JSON document."""
    from rich.rule import Rule
    from rich.table import Table

    text_columns = ("Store", "Scope", "Campaign", "Channel", "Kind", "Rule", "KPI", "Of")
    titles: dict[int, str] = {}

    def table(title: str, *columns: str) -> Table:
        t = Table()
        for column in columns:
            t.add_column(column, justify="left" if column in text_columns else "right")
        titles[id(t)] = title
        return t

    def show(t: Table, empty: str) -> None:
        console.print(f"[bold]{titles[id(t)]}[/bold]", highlight=False)
        console.print(t if t.row_count else f"  {empty}")
        console.print()

    period, kpis = doc["period"], doc["kpis"]
    store = f", store {period['store']}" if period["store"] else ", all stores"
    console.print(Rule(f"O2O report  {period['from']} → {period['to']} (end exclusive, event time){store}"))
    console.print(f"from {doc['source']['clickhouse']}, database {doc['source']['database']}\n")

    # Footfall, dwell, new vs repeat
    t = table("Footfall (store visits that started in the period)", "Store", "Visitors", "Passersby", "Capture rate")
    rows = kpis["footfall"]
    for r in rows:
        t.add_row(r["store_id"], count(r["visitors"]), count(r["passersby"]), pct(r["capture_rate"]))
    if len(rows) > 1:
        visitors, passersby = sum(r["visitors"] for r in rows), sum(r["passersby"] for r in rows)
        t.add_section()
        t.add_row("all", count(visitors), count(passersby), pct(_ratio(visitors, visitors + passersby)))
    show(t, "no store visits")

    buckets = ["0-5 min", "5-15 min", "15-30 min", "30-60 min", "60+ min"]
    dwell: dict[str, dict[str, int]] = {}
    for r in kpis["dwell"]:
        dwell.setdefault(r["store_id"], {})[r["dwell_bucket"]] = r["visits"]
    t = table("Dwell distribution (visitor visits by time in store)", "Store", *buckets)
    for store_id, counts in dwell.items():
        t.add_row(store_id, *(count(counts.get(b, 0)) for b in buckets))
    show(t, "no visitor visits")

    t = table("New vs repeat visitors", "Store", "Visiting persons", "New", "Repeat")
    for r in kpis["new_vs_repeat"]:
        t.add_row(r["store_id"], count(r["visiting_persons"]), count(r["new_visitors"]), count(r["repeat_visitors"]))
    show(t, "no visitors")

    # O2O conversion
    t = table("O2O conversion: browsed online, then visited a store within 7 days",
              "Browsing persons", "Visited a store", "Conversion")
    for r in kpis["browse_to_visit"]:
        if r["browsing_persons"]:
            t.add_row(count(r["browsing_persons"]), count(r["visiting_persons"]), pct(r["conversion_rate"]))
    show(t, "nobody browsed")

    t = table("O2O conversion: store visit → paid purchase at that store", "Store", "Visitor visits",
              "With a paid purchase", "Conversion")
    for r in kpis["visit_to_purchase"]:
        t.add_row(r["store_id"], count(r["visits"]), count(r["converted_visits"]), pct(r["conversion_rate"]))
    show(t, "no visitor visits")

    # Funnel
    t = table("Funnel: page views → browsing persons → ordering → paying", "Scope", "Campaign", "Page views",
              "Browsing", "Ordering", "Paying", "Order rate", "Paid rate", "Conversion")
    for r in kpis["funnel"]:
        if r["scope"] == "campaign" and t.row_count == 1:
            t.add_section()
        t.add_row("overall" if r["scope"] == "all" else "campaign",
                  "" if r["scope"] == "all" else (r["campaign"] or "(none)"), count(r["page_views"]),
                  count(r["browsing_persons"]), count(r["ordering_persons"]), count(r["paying_persons"]),
                  pct(r["order_rate"]), pct(r["paid_rate"]), pct(r["conversion_rate"]))
    show(t, "no page views")

    # Revenue
    t = table("Paid revenue (GMV), orders and average order value", "Store", "Channel", "GMV", "Orders", "AOV")
    rows = kpis["gmv"]
    for r in rows:
        t.add_row(_store(r["store_id"]), r["channel"], money(r["gmv_cents"]), count(r["orders"]), money(r["aov_cents"]))
    if len(rows) > 1:
        gmv, orders = sum(r["gmv_cents"] for r in rows), sum(r["orders"] for r in rows)
        t.add_section()
        t.add_row("all", "", money(gmv), count(orders), money(gmv / orders if orders else None))
    show(t, "no paid purchases")

    # Loyalty
    t = table("Loyalty", "KPI", "Value", "Of")
    for r in kpis["share_rate"]:
        t.add_row("Share rate (persons who shared / persons who paid)", pct(r["share_rate"]),
                  f"{count(r['sharing_persons'])} of {count(r['paying_persons'])}")
    for r in kpis["complaint_rate"]:
        per_100 = r["complaints_per_100_paid_orders"]
        t.add_row("Complaint rate (complaints per 100 paid orders)", "–" if per_100 is None else f"{per_100:.2f}",
                  f"{count(r['complaints'])} complaint(s), {count(r['paid_orders'])} paid order(s)")
    for r in kpis["data_heat"]:
        heat = r["heat_pct"]
        t.add_row("Data heat (active members / members seen)", "–" if heat is None else f"{heat:.1f} %",
                  f"{count(r['active_members'])} of {count(r['members'])}")
    show(t, "nothing to rate")

    # Triggers and attribution
    attributed = {r["rule"]: r for r in kpis["attributed_conversions"]}
    t = table("Triggers and attributed conversions (paid within 48 h after a marketing trigger)", "Rule", "Kind",
              "Fired", "Suppressed", "Attributed conversions", "Attributed revenue")
    for r in kpis["triggers"]:
        a = attributed.pop(r["rule"], None)
        t.add_row(r["rule"], r["kind"], count(r["fired"]), count(r["suppressed"]),
                  count(a["attributed_conversions"]) if a else "0", money(a["attributed_revenue_cents"] if a else 0))
    for rule, a in sorted(attributed.items()):  # triggers fired before the period that converted in it
        t.add_row(rule, "marketing", "0", "0", count(a["attributed_conversions"]), money(a["attributed_revenue_cents"]))
    show(t, "no trigger decisions")
