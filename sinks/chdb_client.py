"""A clickhouse-driver-shaped client over chdb (current ClickHouse, in-process).

It lets the warehouse code -- migrations, `rows_for` inserts, KPI queries -- run unchanged on current
ClickHouse, which is how the tests prove every statement on both engines. It implements the part of
`clickhouse_driver.Client.execute` the warehouse uses:

    client = ChdbClient(chdb_session)              # or ChdbClient(path=...) for a session of its own
    client.execute("CREATE DATABASE IF NOT EXISTS o2o"); client.execute("USE o2o")
    client.execute("INSERT INTO t (a, b) VALUES", [[1, 2], ["x", "y"]], columnar=True)
    rows, columns = client.execute("SELECT ...", with_column_types=True)

Inserted data is rendered as SQL literals (`sql_literal`). chdb is a test dependency
(`pip install .[test]`); production talks to a ClickHouse server through clickhouse-driver.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from zoneinfo import ZoneInfo
from typing import Any, Sequence

from sinks.sql import sql_literal

_USE = re.compile(r"^\s*USE\s+([A-Za-z_][A-Za-z0-9_]*)\s*;?\s*$", re.IGNORECASE)


class ChdbClient:
    def __init__(self, session: Any = None, *, path: str | None = None, database: str | None = None):
        if session is None:
            from chdb import session as chdb_session

            session = chdb_session.Session(path) if path else chdb_session.Session()
        self.session = session
        self.database = database

    def execute(self, query: str, params: Sequence[Any] | None = None, *, columnar: bool = False,
                with_column_types: bool = False, settings: dict[str, Any] | None = None) -> Any:
        """clickhouse-driver's `execute`; `settings` are accepted and not needed in process."""
        use = _USE.match(query)
        if use:
            self.database = use.group(1)
        if self.database:
            self.session.query(f"USE {self.database}")
        if params is not None:
            rows = list(zip(*params)) if columnar else list(params)
            if not rows:
                return 0
            query = query.rstrip() + " " + ", ".join(
                "(" + ", ".join(sql_literal(v) for v in row) + ")" for row in rows)
            self._run(query, "CSV")
            return len(rows)
        text = self._run(query, "JSONCompact")
        if not text.strip():
            return ([], []) if with_column_types else []
        result = json.loads(text)
        types = [(c["name"], c["type"]) for c in result["meta"]]
        rows = [tuple(_python(value, type_) for value, (_, type_) in zip(row, types)) for row in result["data"]]
        return (rows, types) if with_column_types else rows

    def _run(self, query: str, fmt: str) -> str:
        result = self.session.query(query, fmt)
        if hasattr(result, "has_error") and result.has_error():
            raise RuntimeError(f"chdb rejected:\n{query}\n{result.error_message()}")
        return str(result)

    def disconnect(self) -> None:
        """For symmetry with clickhouse-driver; the session belongs to whoever made it."""


def _python(value: Any, type_: str) -> Any:
    """JSON value -> what clickhouse-driver would return for `type_`."""
    if value is None:
        return None
    inner = type_
    if inner.startswith("Nullable("):
        inner = inner[len("Nullable("):-1]
    if inner.startswith("Array("):
        item = inner[len("Array("):-1]
        return [_python(v, item) for v in value]
    if inner.startswith("Tuple("):
        return tuple(_python(v, t) for v, t in zip(value, _split_types(inner[len("Tuple("):-1])))
    if re.match(r"^U?Int\d+$", inner):
        return int(value)
    if inner.startswith("Float"):
        return float(value)
    if inner == "DateTime":
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
    if inner.startswith("DateTime('"):
        zone = ZoneInfo(inner[len("DateTime('"):-2])
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone)
    if inner == "Date":
        return date.fromisoformat(value)
    return value


def _split_types(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        depth += char == "("
        depth -= char == ")"
        current += char
    parts.append(current.strip())
    return parts
