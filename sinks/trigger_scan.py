"""The aggregate trigger rules, evaluated on ClickHouse: one SQL file per rule type, run and decided.

    report = evaluate(client, settings, rules_config, now_ms)   # every enabled aggregate rule, once
    out = scan(client, settings, rules_config, now_ms)          # the same, just the RuleOutput
    publish(...)                                                 # agents/scan.py: topics + decision log

Each aggregate rule type (`store_complaint_spike`, `lapsed_member`: the rule classes with
`AGGREGATE = True`) has a documented query in `sinks/triggers/<type>.sql` returning the row shape
of its module's `ROW_FIELDS`. Placeholders are filled here, as `sinks/kpis.py` does (ClickHouse
18.16 has no server-side parameters): every value is a validated integer:

    placeholder               value
    {now_ms}                  the evaluation time (epoch ms, event time; the wall clock when live)
    {window_ms} {threshold}   store_complaint_spike: window_min in ms, threshold
    {lapse_ms}                lapsed_member: days in ms
    {complaint_suppress_ms}   lapsed_member: complaint_recovery's suppression period (0: none)

The rows go to a fresh `RuleEngine(rules_config, journey_policy).on_aggregate(rule, rows)`, so the
triggers and their ids are exactly what the engine builds (ids are deterministic: the rule and the
causing events). A scan is stateless; what it cannot know is handled so:

- Repeats: a row whose trigger id `triggers_log` already records as *fired* is dropped before the
  engine sees it (`already_published`), and so is one in `skip_ids` (the worker's memory of what it
  published and the sink may not have stored yet). Suppressed and held firings are decided again
  by the next scan: a firing dropped in quiet hours may fire when they are over.
- Marketing controls: consent and complaint suppression are applied by the lapsed_member query
  (see its header). Cooldown and the daily cap are per-person state of the journey worker's
  engine and are not consulted; quiet hours are (a fresh engine judges them by `fired_at`).

`client` is a clickhouse-driver Client in the warehouse database, or `sinks.chdb_client.ChdbClient`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable

from pipeline.rules import RuleEngine, RuleOutput
from pipeline.rules.config import RulesConfig, RuleSpec
from sinks.errors import explain
from sinks.sql import quote_string

PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "store_complaint_spike": ("now_ms", "window_ms", "threshold"),
    "lapsed_member": ("now_ms", "lapse_ms", "complaint_suppress_ms"),
}
LATEST_MS = 4_102_444_800_000  # 2100-01-01: DateTime (UInt32 seconds) holds no later time
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LOOKUP_CHUNK = 5_000


class ScanError(Exception):
    """The scan could not run; the message says what was wrong and what to do."""


@dataclass(slots=True)
class ScanReport:
    """One evaluation: which rules ran at which time, the engine's decisions, and what was skipped."""

    at_ms: int
    rules: list[str]
    output: RuleOutput = field(default_factory=RuleOutput)
    rows: dict[str, int] = field(default_factory=dict)                     # result rows per rule
    already_published: dict[str, list[str]] = field(default_factory=dict)  # rule -> trigger ids skipped


# --- the SQL --------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def rule_sql(rule_type: str) -> str:
    """The query of an aggregate rule type (sinks/triggers/<type>.sql), comments dropped."""
    if rule_type not in PLACEHOLDERS:
        raise KeyError(f"no aggregate rule type {rule_type!r}; known: {', '.join(PLACEHOLDERS)}")
    text = resources.files("sinks").joinpath("triggers", f"{rule_type}.sql").read_text(encoding="utf-8")
    unknown = sorted(set(_PLACEHOLDER.findall(text)) - set(PLACEHOLDERS[rule_type]))
    if unknown:
        raise ValueError(f"sinks/triggers/{rule_type}.sql uses unknown placeholders {unknown}")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return body.strip().rstrip(";").strip()


def render(rule_type: str, values: dict[str, int]) -> str:
    """The query with every placeholder replaced by its (checked integer) value."""
    sql = rule_sql(rule_type)
    needed = set(_PLACEHOLDER.findall(sql))
    missing = sorted(needed - set(values))
    if missing:
        raise KeyError(f"{rule_type}: no value for {', '.join(missing)}")
    for name in needed:
        value = values[name]
        if type(value) is not int or not 0 <= value <= LATEST_MS:
            raise ValueError(f"{rule_type}: {name} must be an integer in 0..{LATEST_MS}, got {value!r}")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), sql)


def parameters(rule: Any, now_ms: int, complaint_suppress_ms: int = 0) -> dict[str, int]:
    """The placeholder values of a compiled aggregate rule at `now_ms`."""
    if rule.TYPE == "store_complaint_spike":
        return {"now_ms": now_ms, "window_ms": rule.window_ms, "threshold": rule.threshold}
    if rule.TYPE == "lapsed_member":
        return {"now_ms": now_ms, "lapse_ms": rule.lapse_ms, "complaint_suppress_ms": complaint_suppress_ms}
    raise KeyError(f"no query for rule type {rule.TYPE!r}")


def query_rows(client: Any, sql: str) -> list[dict[str, Any]]:
    rows, columns = client.execute(sql, with_column_types=True)
    names = [name for name, _ in columns]
    return [dict(zip(names, row)) for row in rows]


# --- which rules ----------------------------------------------------------------------------------

def aggregate_rules(rules_config: RulesConfig, names: Iterable[str] | None = None) -> list[RuleSpec]:
    """The enabled aggregate rules (or the named ones, which must be); ValueError says which exist."""
    from pipeline.rules.config import RULE_TYPES

    enabled = [spec for spec in rules_config.enabled() if getattr(RULE_TYPES[spec.type], "AGGREGATE", False)]
    if names is None:
        return enabled
    by_name = {spec.name: spec for spec in enabled}
    wanted = list(dict.fromkeys(names))
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not an enabled aggregate rule of {rules_config.source}; "
                         f"enabled aggregate rules: {', '.join(by_name) or 'none'}")
    return [by_name[name] for name in wanted]


# --- deciding -------------------------------------------------------------------------------------

def recorded_fired(client: Any, rule: str, trigger_ids: Iterable[str]) -> set[str]:
    """Of `trigger_ids`, those `triggers_log` records as fired for `rule`."""
    ids = sorted(set(trigger_ids))
    found: set[str] = set()
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        chunk = ", ".join(quote_string(i) for i in ids[start:start + _LOOKUP_CHUNK])
        found.update(row[0] for row in client.execute(
            f"SELECT DISTINCT trigger_id FROM triggers_log WHERE rule = {quote_string(rule)} "
            f"AND outcome = 'fired' AND trigger_id IN ({chunk})"))
    return found


def evaluate(client: Any, settings: Any, rules_config: RulesConfig, now_ms: int,
             names: Iterable[str] | None = None, skip_ids: Iterable[str] = ()) -> ScanReport:
    """Run the aggregate rules (all enabled ones, or `names`) at `now_ms` and decide their rows."""
    specs = aggregate_rules(rules_config, names)
    engine = RuleEngine(rules_config, settings.journey_policy())
    complaint_ms = engine.controls.complaint_suppression_ms or 0
    skip = set(skip_ids)
    report = ScanReport(now_ms, [spec.name for spec in specs])
    for spec in specs:
        rule = engine.rules[spec.name]
        rows = query_rows(client, render(rule.TYPE, parameters(rule, now_ms, complaint_ms)))
        report.rows[spec.name] = len(rows)
        candidates = [(row, rule.build_trigger(row)) for row in rows]
        ids = [trigger.trigger_id for _, trigger in candidates if trigger is not None]
        done = (recorded_fired(client, spec.name, ids) if ids else set()) | (skip & set(ids))
        fresh = [row for row, trigger in candidates if trigger is None or trigger.trigger_id not in done]
        report.already_published[spec.name] = sorted(done)
        report.output.extend(engine.on_aggregate(spec.name, fresh))
    return report


def scan(client: Any, settings: Any, rules_config: RulesConfig, now_ms: int) -> RuleOutput:
    """Every enabled aggregate rule once at `now_ms`: the triggers to publish and the suppressions."""
    return evaluate(client, settings, rules_config, now_ms).output


# --- against the configured warehouse -------------------------------------------------------------

def connect(settings: Any) -> Any:
    from clickhouse_driver import Client

    return Client(**settings.clickhouse_client_kwargs(), connect_timeout=5, send_receive_timeout=300)


def evaluate_on(client: Any, settings: Any, rules_config: RulesConfig, now_ms: int,
                names: Iterable[str] | None = None, skip_ids: Iterable[str] = ()) -> ScanReport:
    """`evaluate` on a clickhouse-driver client of the configured warehouse; ScanError says what to do."""
    try:
        return evaluate(client, settings, rules_config, now_ms, names, skip_ids)
    except Exception as exc:
        message = explain(exc, settings, "a trigger rule query")
        if message is None:
            raise
        raise ScanError(message) from None


def run_scan(settings: Any, now_ms: int, names: Iterable[str] | None = None,
             rules_config: RulesConfig | None = None) -> ScanReport:
    """One scan on the configured warehouse with a client of its own (the CLI's entry point)."""
    rules_config = rules_config if rules_config is not None else settings.rules()
    client = connect(settings)
    try:
        return evaluate_on(client, settings, rules_config, now_ms, names)
    finally:
        client.disconnect()
