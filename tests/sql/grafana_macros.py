"""What Grafana and the ClickHouse data source plugin do to a panel's SQL before ClickHouse sees it.

Grafana interpolates template variables first (`${__from}` / `${__to}`: the time range in epoch
ms; `${store:sqlstring}`: the Store variable as a quoted SQL string, or its custom all-value `''`
as is), then the plugin expands its macros (grafana-clickhouse-datasource, pkg/macros/macros.go):

    $__timeFilter(c)    c >= toDateTime(<from s>) AND c <= toDateTime(<to s>)
    $__timeInterval(c)  toStartOfInterval(toDateTime(c), INTERVAL <interval s> second)
    $__interval_s       <interval s>
    $__fromTime         toDateTime(<from s>)          $__toTime   toDateTime(<to s>)

`expand` does the same with concrete values, and refuses anything else that looks like a variable
or macro, so a panel cannot use one that the tests do not run.
"""

from __future__ import annotations

import re


def sqlstring(value: str) -> str:
    """Grafana's `sqlstring` variable format: single quotes, quotes inside doubled."""
    return "'" + value.replace("'", "''") + "'"


def expand(sql: str, from_ms: int, to_ms: int, store: str | None = None, interval_s: int = 60) -> str:
    from_s, to_s = from_ms // 1000, to_ms // 1000
    variables = {
        "${__from}": str(from_ms),
        "${__to}": str(to_ms),
        "${store:sqlstring}": "''" if store is None else sqlstring(store),  # All: allValue '' unformatted
    }
    for name, value in variables.items():
        sql = sql.replace(name, value)
    sql = re.sub(r"\$__timeFilter\(\s*([^()]+?)\s*\)",
                 lambda m: f"{m[1]} >= toDateTime({from_s}) AND {m[1]} <= toDateTime({to_s})", sql)
    sql = re.sub(r"\$__timeInterval\(\s*([^()]+?)\s*\)",
                 lambda m: f"toStartOfInterval(toDateTime({m[1]}), INTERVAL {interval_s} second)", sql)
    sql = sql.replace("$__interval_s", str(interval_s))
    sql = sql.replace("$__fromTime", f"toDateTime({from_s})").replace("$__toTime", f"toDateTime({to_s})")
    leftover = re.findall(r"\$\{?[A-Za-z_][A-Za-z0-9_:]*\}?", sql)
    if leftover:
        raise AssertionError(f"the test helper does not expand {sorted(set(leftover))}; teach it what Grafana does")
    return sql


# --- the generated dashboards ----------------------------------------------------------------------

def load_generator():
    """deploy/grafana/build.py as a module (deploy/ is not a package)."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "build.py"
    spec = importlib.util.spec_from_file_location("o2o_grafana_build", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def targets(model: dict, datasource_type: str) -> list[tuple[str, dict]]:
    """(panel title, target) for every query of that data source type in a dashboard model."""
    found = []
    for panel in model["panels"]:
        for target in panel.get("targets", []):
            source = target.get("datasource") or panel.get("datasource") or {}
            if source.get("type") == datasource_type:
                found.append((f"{panel['title']} [{target['refId']}]", target))
    return found
