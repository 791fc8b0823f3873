"""The KPI queries: one documented SQL file per KPI in `sinks/kpis/`, filled and run here.

    period = Period.parse("2026-11-22", "2026-11-23", store="sh-001")  # from, to (exclusive), store
    rows = run_kpi(client, "footfall", period)        # [{"store_id": "sh-001", "visitors": 3, ...}]
    report = run_report(client, period)               # {"footfall": [...], "dwell": [...], ...}

Each file starts with a comment block: its title (first line), meaning, parameters, how it stays
exact under duplicates and how it joins through the identity re-pointing (`person_map`). The
placeholders are `{from_ms}` and `{to_ms}` (epoch milliseconds, event time; the end is exclusive)
and `{store}` (a string literal, '' for every store). ClickHouse 18.16 has no server-side query
parameters, so they are filled here: the times are validated integers, the store a quoted,
escaped literal; any other `{name}` in a file is an error.

`client` is a clickhouse-driver Client in the warehouse database (or `sinks.chdb_client.ChdbClient`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timezone, tzinfo
from functools import lru_cache
from importlib import resources
from typing import Any

from sinks.sql import quote_string

# What `o2o report` prints, in order. The other files (store_minutes, person_profiles) feed dashboards.
REPORT_KPIS: tuple[str, ...] = (
    "footfall", "dwell", "new_vs_repeat", "browse_to_visit", "visit_to_purchase", "funnel", "gmv",
    "share_rate", "complaint_rate", "data_heat", "triggers", "attributed_conversions",
)
DASHBOARD_QUERIES: tuple[str, ...] = ("store_minutes", "person_profiles")
PLACEHOLDERS = ("from_ms", "to_ms", "store")

# DateTime (seconds, UInt32) covers 1970..2106; the pre-aggregates compare minutes as DateTime.
EARLIEST_MS = 0
LATEST_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z, the default end
STORE_MAX_LEN = 128
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class KpiError(ValueError):
    """A bad period, store or KPI name; the message says what to send instead."""


@dataclass(frozen=True, slots=True)
class Kpi:
    name: str
    title: str
    doc: str  # the header comment, without '-- '
    sql: str  # with placeholders

    @property
    def uses_store(self) -> bool:
        return "{store}" in self.sql


@dataclass(frozen=True, slots=True)
class Period:
    """[from_ms, to_ms) in event time, and an optional store."""

    from_ms: int = EARLIEST_MS
    to_ms: int = LATEST_MS
    store: str | None = None

    def __post_init__(self) -> None:
        for name in ("from_ms", "to_ms"):
            value = getattr(self, name)
            if type(value) is not int or not EARLIEST_MS <= value <= LATEST_MS:
                raise KpiError(f"{name} must be epoch milliseconds between 1970 and 2100, got {value!r}")
        if self.from_ms >= self.to_ms:
            raise KpiError("the period is empty: --from must be before --to (the end is exclusive)")
        if self.store is not None:
            if not isinstance(self.store, str) or not self.store or len(self.store) > STORE_MAX_LEN:
                raise KpiError(f"store must be a store id of 1..{STORE_MAX_LEN} characters, got {self.store!r}")
            if any(ord(ch) < 32 for ch in self.store):
                raise KpiError("store must not contain control characters")

    @classmethod
    def parse(cls, start: str | None = None, end: str | None = None, store: str | None = None,
              default_tz: tzinfo = timezone.utc) -> Period:
        """From the CLI's --from / --to (ISO-8601 date or date-time, offset optional) and --store."""
        return cls(parse_time(start, "--from", default_tz) if start is not None else EARLIEST_MS,
                   parse_time(end, "--to", default_tz) if end is not None else LATEST_MS,
                   store)

    def parameters(self) -> dict[str, str]:
        return {"from_ms": str(self.from_ms), "to_ms": str(self.to_ms), "store": quote_string(self.store or "")}


def parse_time(text: str, option: str = "time", default_tz: tzinfo = timezone.utc) -> int:
    """Epoch ms of an ISO-8601 date ('2026-11-22', midnight) or date-time ('2026-11-22T10:00',
    '2026-11-22 10:00:00+08:00', '...Z'); without an offset, `default_tz` (UTC) applies."""
    text = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            moment = datetime.combine(date.fromisoformat(text), time(0))
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        raise KpiError(f"{option} {text!r} is not an ISO-8601 date or date-time; use e.g. 2026-11-22 or "
                       "2026-11-22T10:00:00+08:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=default_tz)
    epoch_ms = int(moment.timestamp() * 1000)
    if not EARLIEST_MS <= epoch_ms <= LATEST_MS:
        raise KpiError(f"{option} {text!r} is outside 1970-01-01 .. 2100-01-01")
    return epoch_ms


def _header(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[3:] if line.startswith("-- ") else line[2:])
    return "\n".join(lines).strip()


@lru_cache(maxsize=None)
def load_kpis() -> dict[str, Kpi]:
    """Every query file of `sinks/kpis/`, by name (file name without .sql)."""
    kpis = {}
    for entry in sorted(resources.files("sinks").joinpath("kpis").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        name = entry.name[:-4]
        text = entry.read_text(encoding="utf-8")
        doc = _header(text)
        if not doc:
            raise KpiError(f"sinks/kpis/{entry.name} has no header comment documenting it")
        unknown = sorted(set(_PLACEHOLDER.findall(text)) - set(PLACEHOLDERS))
        if unknown:
            raise KpiError(f"sinks/kpis/{entry.name} uses unknown placeholders {unknown}; "
                           f"the known ones are {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
        body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--")).strip()
        title = " ".join(doc.split("\n\n")[0].split())
        kpis[name] = Kpi(name, title, doc, body.rstrip(";").strip())
    return kpis


def kpi(name: str) -> Kpi:
    kpis = load_kpis()
    if name not in kpis:
        raise KpiError(f"no KPI named {name!r}; known: {', '.join(kpis)}")
    return kpis[name]


def render(name: str, period: Period = Period()) -> str:
    """The query of KPI `name` with the period and store filled in."""
    values = period.parameters()
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], kpi(name).sql)


def render_with(name: str, values: dict[str, str]) -> str:
    """The query of KPI `name` with each placeholder replaced by SQL text of the caller's (the Grafana
    dashboards put template variables there: `${__from}`, `${__to}`, `${store:sqlstring}`)."""
    missing = sorted(set(_PLACEHOLDER.findall(kpi(name).sql)) - set(values))
    if missing:
        raise KpiError(f"KPI {name!r} needs values for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], kpi(name).sql)


def run_kpi(client: Any, name: str, period: Period = Period()) -> list[dict[str, Any]]:
    """Run one KPI; rows as plain dicts keyed by the query's column names."""
    rows, columns = client.execute(render(name, period), with_column_types=True)
    names = [column for column, _ in columns]
    return [dict(zip(names, row)) for row in rows]


def run_report(client: Any, period: Period = Period(),
               names: tuple[str, ...] = REPORT_KPIS) -> dict[str, list[dict[str, Any]]]:
    """The KPIs of `o2o report`, in order."""
    return {name: run_kpi(client, name, period) for name in names}
