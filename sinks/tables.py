"""The warehouse tables, each defined once: columns, engine, keys, and how a record fills a row.

Everything else is derived from these definitions: the CREATE statements (`create_sql`, which the
numbered migrations in `sinks/migrations/` hold as reviewed text; a test proves that migrating
gives exactly these columns, types and engines on ClickHouse 18.16 and on current ClickHouse), the
insert statement (`insert_sql`) and the columnar rows (`rows_for`)::

    client.execute(insert_sql("events"), rows_for("events", events), columnar=True)

Types work on both engines: no LowCardinality, DateTime64, JSON or Map (ClickHouse 18.16 lacks
them). Times are kept twice: an exact `*_ms Int64` epoch-milliseconds column that queries filter
on, and a `DateTime('UTC')` (seconds) the server derives from it (a DEFAULT expression, so inserts
never send it) for minute grouping, funnels and dashboards; UTC whatever the server's time zone. Maps are two parallel arrays
(`*_keys`, `*_values`). Store ids are `String` with '' for "no store" (a key of the per-store
aggregates, where Nullable keys would need more care than they are worth); identifiers and
optional attributes are Nullable.

Deduplication (delivery is at least once):
- `events`, `triggers_log`: ReplacingMergeTree keyed by the event (or trigger) identity; queries read
  them with FINAL, or count with uniqExact(event_id), so a copy inserted twice counts once.
- `sessions`, `store_visits`, `identity_links`: ReplacingMergeTree(version), one row per id once
  merged; queries read FINAL (the latest version).
- `store_minute_stats`, `person_profiles`: AggregatingMergeTree fed by materialized views on insert,
  which see every copy; so every aggregate is idempotent: uniqExact of ids, groupUniqArray of
  (id, amount) pairs for sums, min/max/argMax for times. Each view fills the columns it does not
  feed with an empty state (ClickHouse 18.16 requires a materialized view to give all columns of
  its target), which is why every aggregate is an -If function.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

Record = Mapping[str, Any]

# Session and visit updates of one batch share `emitted_at`; a later state wins over an earlier one.
STATE_RANK = {"open": 0, "closed": 1, "absorbed": 2}


@dataclass(frozen=True, slots=True)
class Column:
    """A column and, for inserted ones, how to get its value from a record.

    `default` is a server-side DEFAULT expression: such a column is never inserted.
    """

    name: str
    type: str
    get: Callable[[Record], Any] | None = None
    default: str | None = None
    doc: str = ""

    @property
    def inserted(self) -> bool:
        return self.default is None and self.get is not None

    def ddl(self) -> str:
        return f"{self.name} {self.type}" + (f" DEFAULT {self.default}" if self.default else "")


@dataclass(frozen=True, slots=True)
class Aggregate:
    """A column of an AggregatingMergeTree: the state of `function` (an -If function) over `arg_types`."""

    name: str
    function: str
    arg_types: tuple[str, ...]
    doc: str = ""

    def __post_init__(self) -> None:
        if not self.function.endswith("If") or self.arg_types[-1] != "UInt8":
            raise ValueError(f"aggregate {self.name}: use an -If function ending in a UInt8 condition, "
                             f"got {self.function}{self.arg_types}")

    @property
    def type(self) -> str:
        return f"AggregateFunction({self.function}, {', '.join(self.arg_types)})"

    @property
    def inserted(self) -> bool:
        return False

    def ddl(self) -> str:
        return f"{self.name} {self.type}"

    def state(self, *args: str) -> str:
        return f"{self.function}State({', '.join(args)})"

    def empty_state(self) -> str:
        """The state of no rows: neutral when merged with any other."""
        return self.state(*[_ZERO[t] for t in self.arg_types[:-1]], "toUInt8(0)")

    def merge(self) -> str:
        return f"{self.function}Merge({self.name})"


_ZERO = {"String": "toString('')", "Int64": "toInt64(0)", "UInt8": "toUInt8(0)",
         "Tuple(String, Int64)": "tuple(toString(''), toInt64(0))"}


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[Column | Aggregate, ...]
    engine: str
    order_by: str
    partition_by: str | None = None
    doc: str = ""

    def column(self, name: str) -> Column | Aggregate:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"table {self.name} has no column {name}")

    @property
    def insert_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.inserted)  # type: ignore[misc]

    def create_sql(self) -> str:
        body = ",\n".join(f"    {column.ddl()}" for column in self.columns)
        lines = [f"CREATE TABLE IF NOT EXISTS {self.name}\n(\n{body}\n)", f"ENGINE = {self.engine}"]
        if self.partition_by:
            lines.append(f"PARTITION BY {self.partition_by}")
        lines.append(f"ORDER BY {self.order_by}")
        return "\n".join(lines)

    def insert_sql(self) -> str:
        return f"INSERT INTO {self.name} ({', '.join(c.name for c in self.insert_columns)}) VALUES"

    def rows(self, records: Iterable[Record]) -> list[list[Any]]:
        """Columnar data for `client.execute(insert_sql, columns, columnar=True)`."""
        records = records if isinstance(records, (list, tuple)) else list(records)
        return [_values(column.get, records) for column in self.insert_columns]  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class View:
    """A plain view (a stored query)."""

    name: str
    select: str
    doc: str = ""

    def create_sql(self) -> str:
        return f"CREATE VIEW IF NOT EXISTS {self.name} AS\n{self.select}"


@dataclass(frozen=True, slots=True)
class MaterializedView:
    """Feeds `target` (an AggregatingMergeTree) from each block inserted into `source`.

    `keys`: target key column -> expression over the source; `feeds`: aggregate column -> its
    arguments (the last one the UInt8 condition). Aggregates not fed get their empty state.
    Never alias an expression to the name of a source column (`assumeNotNull(x) AS x`): ClickHouse
    18.16 then applies WHERE to the alias inside a materialized view.
    """

    name: str
    source: str
    target: Table
    keys: dict[str, str]
    feeds: dict[str, tuple[str, ...]]
    where: str | None = None
    doc: str = ""

    def create_sql(self) -> str:
        selected = []
        for column in self.target.columns:
            if isinstance(column, Aggregate):
                args = self.feeds.get(column.name)
                expression = column.state(*args) if args else column.empty_state()
            else:
                expression = self.keys[column.name]
            selected.append(expression if expression == column.name else f"{expression} AS {column.name}")
        unknown = (set(self.keys) | set(self.feeds)) - {c.name for c in self.target.columns}
        if unknown:
            raise ValueError(f"view {self.name} feeds unknown columns of {self.target.name}: {sorted(unknown)}")
        lines = [f"CREATE MATERIALIZED VIEW IF NOT EXISTS {self.name} TO {self.target.name} AS",
                 "SELECT", ",\n".join(f"    {s}" for s in selected), f"FROM {self.source}"]
        if self.where:
            lines.append(f"WHERE {self.where}")
        lines.append(f"GROUP BY {', '.join(self.keys)}")
        return "\n".join(lines)


# --- value helpers -------------------------------------------------------------------------------

def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class _Field:
    """A record's field as is (None when absent): the most common column value."""

    key: str

    def __call__(self, r: Record) -> Any:
        return r.get(self.key)


def _get(key: str) -> Callable[[Record], Any]:
    return _Field(key)


def _values(get: Callable[[Record], Any], records: list[Record] | tuple[Record, ...]) -> list[Any]:
    """One column's values; a plain field is read inline (a call per row costs more than the read)."""
    if type(get) is _Field:
        key = get.key
        return [r.get(key) for r in records]
    return [get(r) for r in records]


def _required(table: str, key: str) -> Callable[[Record], Any]:
    def get(r: Record) -> Any:
        value = r.get(key)
        if value is None:
            raise ValueError(f"{table}: record {r.get('event_id') or r.get('session_id') or r.get('visit_id') or ''!s} "
                             f"has no '{key}'; every {table} row needs it")
        return value
    return get


def _text(key: str) -> Callable[[Record], str]:
    return lambda r: r.get(key) or ""


def _flag(key: str) -> Callable[[Record], int]:
    return lambda r: int(bool(r.get(key)))


def _nullable_flag(key: str) -> Callable[[Record], int | None]:
    return lambda r: None if r.get(key) is None else int(bool(r[key]))


def _of_type(event_type: str, key: str, empty: Any = None) -> Callable[[Record], Any]:
    """A field that exists in several event types under one name but means something else in each."""
    def get(r: Record) -> Any:
        value = r.get(key) if r.get("event_type") == event_type else None
        return empty if value is None else value
    return get


def _list(key: str) -> Callable[[Record], list]:
    return lambda r: list(r.get(key) or ())


def _map_keys(key: str) -> Callable[[Record], list[str]]:
    return lambda r: sorted((r.get(key) or {}).keys())


def _map_values(key: str, cast: Callable[[Any], Any] = str) -> Callable[[Record], list]:
    return lambda r: [cast(v) for _, v in sorted((r.get(key) or {}).items())]


def _items(key: str) -> Callable[[Record], list]:
    return lambda r: [item[key] for item in r.get("items") or ()]


def _versioned(r: Record) -> int:
    """Newer emission wins; within one emission closed beats open and absorbed beats both."""
    return int(r["emitted_at"]) * 4 + STATE_RANK[r["state"]]


def _event_person(r: Record) -> str:
    person = r.get("person_id")
    if not person:
        raise ValueError(f"events: event {r.get('event_id')!s} has no person_id; the sink stores each "
                         "event with the person it resolved to at ingest (pipeline.journey)")
    return person


def _hashed_only(r: Record) -> str:
    for raw in ("wifi_mac", "phone"):
        if r.get(raw):
            raise ValueError(f"events: event {r.get('event_id')!s} still carries a raw '{raw}'; only hashed "
                             "identifiers may be stored (pipeline.privacy.hash_identifiers at the first hop)")
    return r["event_id"]


def _payload_datum(r: Record) -> tuple[str, Any]:
    """(Avro record name, payload): Trigger.to_record() gives a (name, dict) pair; a dict or JSON text also do."""
    payload = r.get("payload")
    name = r.get("payload_record") or ""
    if isinstance(payload, (tuple, list)) and len(payload) == 2 and isinstance(payload[0], str):
        name, payload = payload
    return name, payload


def _payload(r: Record) -> dict[str, str]:
    payload = _payload_datum(r)[1]
    if isinstance(payload, str):
        try:
            payload = json.loads(payload) if payload else {}
        except ValueError:
            return {}
    if not isinstance(payload, dict):
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in payload.items()}


def _payload_json(r: Record) -> str:
    payload = _payload_datum(r)[1]
    if payload is None:
        return ""
    if isinstance(payload, str):
        return payload
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _first(*keys: str, default: Any = None) -> Callable[[Record], Any]:
    def get(r: Record) -> Any:
        for key in keys:
            if r.get(key) is not None:
                return r[key]
        return default
    return get


def _trigger_outcome(r: Record) -> str:
    outcome = r.get("outcome") or ("suppressed" if r.get("reason") or r.get("suppressed") else "fired")
    if outcome not in ("fired", "suppressed"):
        raise ValueError(f"triggers_log: outcome must be 'fired' or 'suppressed', got {outcome!r}")
    return outcome


def _trigger_id(r: Record) -> str:
    """Deterministic: the engine's trigger id, or (suppressions without one) a hash of what was decided."""
    if r.get("trigger_id"):
        return r["trigger_id"]
    causes = ",".join(_first("cause_event_ids", "event_ids", default=[])(r))
    basis = "|".join([r["rule"], r.get("person_id") or "", causes, r.get("reason") or ""])
    return "s:" + hashlib.sha256(basis.encode()).hexdigest()[:32]


UTC_DATETIME = "DateTime('UTC')"


def _ms_to_datetime(column: str) -> str:
    return f"toDateTime(intDiv({column}, 1000), 'UTC')"


# --- tables --------------------------------------------------------------------------------------

SCHEMA_MIGRATIONS = Table(
    name="schema_migrations",
    doc="Applied migrations, one row per file (ReplacingMergeTree: a concurrent second `o2o init` "
        "writes the same row again, FINAL reads it once).",
    columns=(
        Column("name", "String", _get("name")),
        Column("checksum", "String", _get("checksum"), doc="sha256 of the file text as applied"),
        Column("applied_at_ms", "Int64", _get("applied_at_ms")),
    ),
    engine="ReplacingMergeTree()",
    order_by="name",
)

EVENTS = Table(
    name="events",
    doc="Every accepted event with the person it resolved to at ingest; hashed identifiers only. "
        "Deduplicated on the event: a copy has the same type, time and id, hence the same sort key, "
        "and FINAL (or uniqExact(event_id)) counts it once.",
    columns=(
        Column("event_id", "String", _hashed_only),
        Column("event_type", "String", _required("events", "event_type")),
        Column("occurred_at_ms", "Int64", _required("events", "occurred_at"), doc="event time, epoch ms UTC"),
        Column("occurred_at", UTC_DATETIME, default=_ms_to_datetime("occurred_at_ms")),
        Column("ingested_at_ms", "Int64", lambda r: r.get("ingested_at") or now_ms(), doc="when the sink wrote it"),
        Column("ingested_at", UTC_DATETIME, default=_ms_to_datetime("ingested_at_ms")),
        Column("is_late", "UInt8", _flag("late"), doc="older than the allowed lateness when it arrived"),
        Column("person_id", "String", _event_person, doc="person at ingest; re-pointed by person_map"),
        Column("channel", "String", _text("channel")),
        Column("source_id", "Nullable(String)", _get("source_id")),
        Column("member_id", "Nullable(String)", _get("member_id")),
        Column("device_id", "Nullable(String)", _get("device_id")),
        Column("wifi_mac_hash", "Nullable(String)", _get("wifi_mac_hash")),
        Column("phone_hash", "Nullable(String)", _get("phone_hash")),
        Column("store_id", "String", _text("store_id"), doc="'' when the event has no store"),
        Column("consent_marketing", "Nullable(UInt8)", _nullable_flag("consent_marketing")),
        Column("property_keys", "Array(String)", _map_keys("properties")),
        Column("property_values", "Array(String)", _map_values("properties")),
        # browse
        Column("page", "Nullable(String)", _get("page")),
        Column("sku", "Nullable(String)", _get("sku")),
        Column("category", "Nullable(String)", _of_type("browse", "category"), doc="product category viewed"),
        Column("search_query", "Nullable(String)", _get("search_query")),
        Column("campaign", "Nullable(String)", _get("campaign")),
        # wifi_checkin
        Column("checkin_kind", "String", _of_type("wifi_checkin", "kind", ""), doc="probe, associate, ..."),
        Column("ap_id", "Nullable(String)", _get("ap_id")),
        Column("rssi", "Nullable(Int16)", _get("rssi")),
        # purchase (order_id also on complaints)
        Column("order_id", "Nullable(String)", _get("order_id")),
        Column("status", "String", _of_type("purchase", "status", ""), doc="created, paid, cancelled, refunded"),
        Column("amount_cents", "Nullable(Int64)", _get("amount_cents")),
        Column("currency", "Nullable(String)", _get("currency")),
        Column("item_skus", "Array(String)", _items("sku")),
        Column("item_quantities", "Array(UInt32)", _items("quantity")),
        Column("item_prices_cents", "Array(Int64)", _items("price_cents")),
        # share
        Column("platform", "String", _of_type("share", "platform", "")),
        Column("target", "Nullable(String)", _get("target")),
        # complaint
        Column("complaint_id", "Nullable(String)", _get("complaint_id")),
        Column("complaint_category", "String", _of_type("complaint", "category", "")),
        Column("severity", "String", _of_type("complaint", "severity", "")),
    ),
    engine="ReplacingMergeTree()",
    partition_by=f"toYYYYMM({_ms_to_datetime('occurred_at_ms')})",
    order_by="(event_type, occurred_at_ms, event_id)",
)

IDENTITY_LINKS = Table(
    name="identity_links",
    doc="Person re-pointing: from_person now belongs to to_person, always the final person (the sink "
        "keeps the closure: sinks.writer.apply_person_merges). Latest version per from_person wins.",
    columns=(
        Column("from_person", "String", _get("from_person")),
        Column("to_person", "String", _get("to_person")),
        Column("merged_at_ms", "Int64", _get("at"), doc="event time of the linking event"),
        Column("event_id", "String", _text("event_id"), doc="the linking event"),
        Column("version", "UInt64", _get("version")),
    ),
    engine="ReplacingMergeTree(version)",
    order_by="from_person",
)

PERSON_MAP = View(
    name="person_map",
    doc="person_id -> merged_into for every person merged into another; KPIs join it with "
        "ANY LEFT JOIN person_map USING (person_id) and take if(merged_into != '', merged_into, person_id) "
        "(robust to join_use_nulls: an unmatched row has '' or NULL).",
    select="SELECT from_person AS person_id, argMax(to_person, version) AS merged_into\n"
           "FROM identity_links\nGROUP BY from_person",
)

SESSIONS = Table(
    name="sessions",
    doc="Session updates; FINAL gives the latest version of each session (drop state 'absorbed').",
    columns=(
        Column("session_id", "String", _get("session_id")),
        Column("version", "UInt64", _versioned, doc="emitted_at * 4 + state rank"),
        Column("state", "String", _get("state"), doc="open, closed or absorbed"),
        Column("person_id", "String", _text("person_id")),
        Column("absorbed_into", "Nullable(String)", _get("absorbed_into")),
        Column("started_at_ms", "Int64", _get("start")),
        Column("started_at", UTC_DATETIME, default=_ms_to_datetime("started_at_ms")),
        Column("ended_at_ms", "Int64", _get("end")),
        Column("ended_at", UTC_DATETIME, default=_ms_to_datetime("ended_at_ms")),
        Column("event_count", "UInt32", _get("event_count")),
        Column("count_types", "Array(String)", _map_keys("counts")),
        Column("count_values", "Array(UInt32)", _map_values("counts", int)),
        Column("online_channels", "Array(String)", _list("online_channels")),
        Column("offline_channels", "Array(String)", _list("offline_channels")),
        Column("stores", "Array(String)", _list("stores")),
        Column("revenue_cents", "Int64", _get("revenue_cents")),
        Column("has_complaint", "UInt8", _flag("has_complaint")),
        Column("has_share", "UInt8", _flag("has_share")),
        Column("online_to_offline", "UInt8", _flag("online_to_offline")),
        Column("event_ids", "Array(String)", _list("event_ids")),
        Column("emitted_at_ms", "Int64", _get("emitted_at")),
    ),
    engine="ReplacingMergeTree(version)",
    order_by="session_id",
)

STORE_VISITS = Table(
    name="store_visits",
    doc="Store visit updates; FINAL gives the latest version of each visit (drop state 'absorbed').",
    columns=(
        Column("visit_id", "String", _get("visit_id")),
        Column("version", "UInt64", _versioned),
        Column("state", "String", _get("state")),
        Column("person_id", "String", _text("person_id")),
        Column("store_id", "String", _text("store_id")),
        Column("absorbed_into", "Nullable(String)", _get("absorbed_into")),
        Column("started_at_ms", "Int64", _get("start")),
        Column("started_at", UTC_DATETIME, default=_ms_to_datetime("started_at_ms")),
        Column("ended_at_ms", "Int64", _get("end")),
        Column("ended_at", UTC_DATETIME, default=_ms_to_datetime("ended_at_ms")),
        Column("dwell_s", "UInt32", _get("dwell_s")),
        Column("visit_class", "String", _get("class"), doc="visitor or passerby"),
        Column("max_rssi", "Nullable(Int16)", _get("max_rssi")),
        Column("connected", "UInt8", _flag("connected")),
        Column("ended_by_disassociate", "UInt8", _flag("ended_by_disassociate")),
        Column("emitted_at_ms", "Int64", _get("emitted_at")),
    ),
    engine="ReplacingMergeTree(version)",
    order_by="visit_id",
)

TRIGGERS_LOG = Table(
    name="triggers_log",
    doc="Every trigger fired and every suppression, for audit and attribution: a Trigger record "
        "(schemas/trigger.avsc) plus its outcome and, when suppressed, the reason. Trigger ids are "
        "deterministic (rule + causing events), so a replayed decision lands on the same key and "
        "FINAL reads it once.",
    columns=(
        Column("outcome", "String", _trigger_outcome, doc="fired or suppressed"),
        Column("trigger_id", "String", _trigger_id),
        Column("rule", "String", _required("triggers_log", "rule"), doc="rule instance name"),
        Column("rule_type", "String", lambda r: r.get("rule_type") or r["rule"]),
        Column("kind", "String", lambda r: r.get("kind") or "marketing", doc="marketing or service"),
        Column("person_id", "String", _text("person_id"), doc="'' for store-level triggers"),
        Column("member_id", "Nullable(String)", _get("member_id")),
        Column("store_id", "String", _text("store_id")),
        Column("event_time_ms", "Int64", _first("event_time", "occurred_at"), doc="when the cause happened"),
        Column("event_time", UTC_DATETIME, default=_ms_to_datetime("event_time_ms")),
        Column("fired_at_ms", "Int64", _first("fired_at", "event_time", "occurred_at"),
               doc="event time at which the rule fired (or would have)"),
        Column("fired_at", UTC_DATETIME, default=_ms_to_datetime("fired_at_ms")),
        Column("published_at_ms", "Nullable(Int64)", _get("published_at"), doc="wall clock; NULL if never published"),
        Column("cause_event_ids", "Array(String)", _first("cause_event_ids", "event_ids", default=[])),
        Column("reason", "String", _text("reason"), doc="why it was suppressed; '' when fired"),
        Column("payload_record", "String", lambda r: _payload_datum(r)[0], doc="Avro payload record name"),
        Column("payload_keys", "Array(String)", lambda r: sorted(_payload(r))),
        Column("payload_values", "Array(String)", lambda r: [v for _, v in sorted(_payload(r).items())],
               doc="strings as they are, other values as JSON"),
        Column("payload_json", "String", _payload_json, doc="the payload as JSON text"),
    ),
    engine="ReplacingMergeTree()",
    # By the cause's time: it is fixed for a trigger id, so every copy lands in one partition.
    partition_by=f"toYYYYMM({_ms_to_datetime('event_time_ms')})",
    order_by="(rule, trigger_id, outcome)",
)

STORE_MINUTE_STATS = Table(
    name="store_minute_stats",
    doc="Per store per minute, for dashboards: merge the states (sinks/kpis/store_minutes.sql). "
        "Visits count at their start minute once closed (a closed visit is final); events at their "
        "event minute. Persons are kept as ids so queries can re-point them after merges.",
    columns=(
        Column("store_id", "String"),
        Column("minute", UTC_DATETIME),
        Aggregate("visitors", "uniqExactIf", ("String", "UInt8"), doc="visit ids, closed, class visitor"),
        Aggregate("passersby", "uniqExactIf", ("String", "UInt8"), doc="visit ids, closed, class passerby"),
        Aggregate("persons", "groupUniqArrayIf", ("String", "UInt8"), doc="person ids with an event here"),
        Aggregate("paid_purchases", "uniqExactIf", ("String", "UInt8"), doc="event ids of paid purchases"),
        Aggregate("paid_revenue", "groupUniqArrayIf", ("Tuple(String, Int64)", "UInt8"),
                  doc="(event id, amount) of paid purchases: a duplicate adds nothing"),
        Aggregate("shares", "uniqExactIf", ("String", "UInt8")),
        Aggregate("complaints", "uniqExactIf", ("String", "UInt8")),
    ),
    engine="AggregatingMergeTree()",
    partition_by="toYYYYMM(minute)",
    order_by="(store_id, minute)",
)

PERSON_PROFILES = Table(
    name="person_profiles",
    doc="Per person at ingest; sinks/kpis/person_profiles.sql merges the states of persons merged "
        "into one (through person_map), which is exact because every state here is mergeable.",
    columns=(
        Column("person_id", "String"),
        Aggregate("first_seen_ms", "minIf", ("Int64", "UInt8")),
        Aggregate("last_seen_ms", "maxIf", ("Int64", "UInt8")),
        Aggregate("visits", "uniqExactIf", ("String", "UInt8"), doc="closed visits classed visitor"),
        Aggregate("paid_revenue", "groupUniqArrayIf", ("Tuple(String, Int64)", "UInt8")),
        Aggregate("last_store", "argMaxIf", ("String", "Int64", "UInt8"), doc="store of the latest event with one"),
        Aggregate("consent", "argMaxIf", ("UInt8", "Int64", "UInt8"),
                  doc="latest known marketing consent: 2 yes, 1 no (0 after merge: unknown)"),
    ),
    engine="AggregatingMergeTree()",
    order_by="person_id",
)

_PAID = "event_type = 'purchase' AND status = 'paid'"
_VISIT_CLOSED = "state = 'closed'"

STORE_MINUTE_STATS_FROM_EVENTS = MaterializedView(
    name="store_minute_stats_from_events",
    source="events",
    target=STORE_MINUTE_STATS,
    where="store_id != ''",
    keys={"store_id": "store_id", "minute": "toStartOfMinute(occurred_at)"},
    feeds={
        "persons": ("person_id", "toUInt8(1)"),
        "paid_purchases": ("event_id", _PAID),
        "paid_revenue": ("tuple(event_id, ifNull(amount_cents, toInt64(0)))", _PAID),
        "shares": ("event_id", "event_type = 'share'"),
        "complaints": ("event_id", "event_type = 'complaint'"),
    },
)

STORE_MINUTE_STATS_FROM_VISITS = MaterializedView(
    name="store_minute_stats_from_visits",
    source="store_visits",
    target=STORE_MINUTE_STATS,
    where=_VISIT_CLOSED,
    keys={"store_id": "store_id", "minute": "toStartOfMinute(started_at)"},
    feeds={
        "visitors": ("visit_id", "visit_class = 'visitor'"),
        "passersby": ("visit_id", "visit_class = 'passerby'"),
    },
)

PERSON_PROFILES_FROM_EVENTS = MaterializedView(
    name="person_profiles_from_events",
    source="events",
    target=PERSON_PROFILES,
    keys={"person_id": "person_id"},
    feeds={
        "first_seen_ms": ("occurred_at_ms", "toUInt8(1)"),
        "last_seen_ms": ("occurred_at_ms", "toUInt8(1)"),
        "paid_revenue": ("tuple(event_id, ifNull(amount_cents, toInt64(0)))", _PAID),
        "last_store": ("store_id", "occurred_at_ms", "store_id != ''"),
        "consent": ("toUInt8(ifNull(consent_marketing, 0) + 1)", "occurred_at_ms", "isNotNull(consent_marketing)"),
    },
)

PERSON_PROFILES_FROM_VISITS = MaterializedView(
    name="person_profiles_from_visits",
    source="store_visits",
    target=PERSON_PROFILES,
    where=_VISIT_CLOSED,
    keys={"person_id": "person_id"},
    feeds={"visits": ("visit_id", "visit_class = 'visitor'")},
)

TABLES: dict[str, Table] = {t.name: t for t in (
    EVENTS, IDENTITY_LINKS, SESSIONS, STORE_VISITS, TRIGGERS_LOG, STORE_MINUTE_STATS, PERSON_PROFILES,
)}
VIEWS: dict[str, View | MaterializedView] = {v.name: v for v in (
    PERSON_MAP, STORE_MINUTE_STATS_FROM_EVENTS, STORE_MINUTE_STATS_FROM_VISITS,
    PERSON_PROFILES_FROM_EVENTS, PERSON_PROFILES_FROM_VISITS,
)}
# Everything a migration creates, in creation order (a view after the tables it reads and writes).
OBJECTS: dict[str, Table | View | MaterializedView] = {**TABLES, **VIEWS}


def _table(name: str) -> Table:
    table = TABLES.get(name) or (SCHEMA_MIGRATIONS if name == SCHEMA_MIGRATIONS.name else None)
    if table is None:
        raise KeyError(f"no table {name!r}; tables: {', '.join(TABLES)}")
    return table


def create_sql(name: str) -> str:
    """The CREATE statement of a table or view, as its migration holds it."""
    if name == SCHEMA_MIGRATIONS.name:
        return SCHEMA_MIGRATIONS.create_sql()
    if name not in OBJECTS:
        raise KeyError(f"no table or view {name!r}; known: {', '.join(OBJECTS)}")
    return OBJECTS[name].create_sql()


def insert_sql(table: str) -> str:
    """`INSERT INTO t (inserted columns) VALUES`, for clickhouse-driver with the data passed separately."""
    return _table(table).insert_sql()


def insert_columns(table: str) -> tuple[str, ...]:
    return tuple(c.name for c in _table(table).insert_columns)


def rows_for(table: str, records: Iterable[Record]) -> list[list[Any]]:
    """Columnar data (one list per inserted column, in `insert_sql` order) for `records`."""
    return _table(table).rows(records)


def main() -> None:
    """`python -m sinks.tables [name...]`: print the DDL to paste into a new migration."""
    import sys

    for name in sys.argv[1:] or list(OBJECTS):
        print(create_sql(name) + ";\n")


if __name__ == "__main__":
    main()
