"""The warehouse table definitions: one column list from which DDL, insert order and rows derive."""

from __future__ import annotations

import re

import pytest

from pipeline.events import COMMON_FIELDS, EVENT_TYPES, SPECS, TYPE_FIELDS
from sinks.migrate import MIGRATION_NAME, load_migrations, split_statements
from sinks.sql import quote_string, sql_literal
from sinks.writer import trigger_log_records
from sinks.tables import (OBJECTS, TABLES, Aggregate, MaterializedView, create_sql, insert_columns, insert_sql,
                          rows_for)

# A distinctive value for every field kind, so each can be found in the row it produced.
_SAMPLE = {"string": "s", "int": 7, "long": 8, "boolean": True, "timestamp_ms": 1_795_312_800_123}


def full_event(event_type: str) -> dict:
    event = {"event_type": event_type, "person_id": "m:1", "ingested_at": 1_795_312_900_000}
    for spec in SPECS[event_type]:
        if spec.name not in COMMON_FIELDS and spec.name not in TYPE_FIELDS[event_type]:
            continue  # raw identifiers never reach the sink
        if spec.kind == "enum":
            value = spec.symbols[-1]
        elif spec.kind == "map":
            value = {"k1": f"{event_type}-{spec.name}"}
        elif spec.kind == "array":
            value = [{"sku": "sku-9", "quantity": 3, "price_cents": 99}]
        elif spec.kind == "string":
            value = f"{event_type}-{spec.name}"
        else:
            value = _SAMPLE[spec.kind]
        event[spec.name] = value
    return event


def one_row(table: str, record: dict) -> dict:
    return {name: values[0] for name, values in zip(insert_columns(table), rows_for(table, [record]))}


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_schema_field_of_an_event_lands_in_a_column(event_type):
    event = full_event(event_type)
    row = one_row("events", event)
    stored = list(row.values())
    flat = [x for v in stored for x in (v if isinstance(v, list) else [v])]

    for key, value in event.items():
        if key in ("person_id", "ingested_at"):
            continue
        if isinstance(value, dict):
            assert list(value) in stored and list(value.values()) in stored, key
        elif isinstance(value, list):
            assert all(item[k] in flat for item in value for k in item), key
        elif isinstance(value, bool):
            assert int(value) in stored, key
        else:
            assert value in stored, f"{event_type}.{key} = {value!r} is in no column"


def test_fields_that_share_a_name_across_types_go_to_their_own_columns():
    browse = one_row("events", full_event("browse"))
    complaint = one_row("events", full_event("complaint"))

    assert (browse["category"], browse["complaint_category"]) == ("browse-category", "")
    assert (complaint["category"], complaint["complaint_category"]) == (None, "other")


def test_absent_values_are_null_or_empty_as_the_column_says():
    row = one_row("events", {"event_type": "share", "event_id": "e", "occurred_at": 5, "person_id": "d:x",
                             "channel": "app", "properties": {}, "platform": "qq"})

    assert row["store_id"] == "" and row["member_id"] is None and row["consent_marketing"] is None
    assert row["property_keys"] == [] and row["item_skus"] == [] and row["status"] == ""
    assert row["occurred_at_ms"] == 5 and row["is_late"] == 0


@pytest.mark.parametrize("raw", ["wifi_mac", "phone"])
def test_an_event_with_a_raw_identifier_is_refused(raw):
    event = {**full_event("browse"), raw: "AA:BB:CC:00:11:22"}

    with pytest.raises(ValueError, match=f"raw '{raw}'"):
        rows_for("events", [event])


def test_an_event_without_its_person_is_refused_with_the_reason():
    event = {**full_event("browse"), "person_id": None}

    with pytest.raises(ValueError, match="no person_id"):
        rows_for("events", [event])


def test_server_computed_times_are_not_inserted():
    assert "occurred_at" not in insert_columns("events")
    assert "occurred_at_ms" in insert_columns("events")
    assert insert_sql("events").startswith("INSERT INTO events (event_id, event_type, occurred_at_ms, ingested_at_ms,")
    assert insert_sql("events").endswith(") VALUES")


def test_rows_are_columnar_in_insert_order():
    records = [{"from_person": "d:1", "to_person": "m:1", "at": 1, "event_id": "e1", "version": 9},
               {"from_person": "w:1", "to_person": "m:1", "at": 2, "event_id": "e2", "version": 10}]

    assert insert_columns("identity_links") == ("from_person", "to_person", "merged_at_ms", "event_id", "version")
    assert rows_for("identity_links", records) == [["d:1", "w:1"], ["m:1", "m:1"], [1, 2], ["e1", "e2"], [9, 10]]


def test_a_later_state_of_one_emission_wins_over_an_earlier_one():
    base = {"session_id": "s", "person_id": "m:1", "start": 0, "end": 1, "event_count": 1, "counts": {},
            "revenue_cents": 0, "emitted_at": 1000}
    versions = {state: one_row("sessions", {**base, "state": state})["version"] for state in ("open", "closed", "absorbed")}
    later_open = one_row("sessions", {**base, "state": "open", "emitted_at": 1001})["version"]

    assert versions["open"] < versions["closed"] < versions["absorbed"] < later_open


def test_session_counts_become_two_parallel_arrays():
    row = one_row("sessions", {"session_id": "s", "state": "open", "person_id": "m:1", "start": 0, "end": 1,
                               "event_count": 3, "counts": {"purchase": 1, "browse": 2}, "revenue_cents": 0,
                               "emitted_at": 1})

    assert (row["count_types"], row["count_values"]) == (["browse", "purchase"], [2, 1])


def test_a_suppression_without_an_id_gets_a_deterministic_one():
    decision = {"rule": "r", "person_id": "m:1", "event_time": 5, "fired_at": 6, "cause_event_ids": ["e1"],
                "reason": "consent"}

    first, again = one_row("triggers_log", decision), one_row("triggers_log", dict(decision))
    other = one_row("triggers_log", {**decision, "reason": "cooldown"})

    assert first["outcome"] == "suppressed" and first["trigger_id"] == again["trigger_id"] != other["trigger_id"]


@pytest.mark.parametrize("payload, record, keys, values, text", [
    (("ShareInvitePayload", {"points": 50, "order_id": "o1"}), "ShareInvitePayload", ["order_id", "points"],
     ["o1", "50"], '{"order_id":"o1","points":50}'),
    ({"b": "2", "a": [1]}, "", ["a", "b"], ["[1]", "2"], '{"a":[1],"b":"2"}'),
    ('{"sku": "x"}', "", ["sku"], ["x"], '{"sku": "x"}'),
    ("not json", "", [], [], "not json"),
    (None, "", [], [], ""),
])
def test_a_trigger_payload_is_kept_as_a_string_map_and_as_json(payload, record, keys, values, text):
    row = one_row("triggers_log", {"trigger_id": "t", "rule": "r", "person_id": "m:1", "event_time": 1,
                                   "fired_at": 2, "payload": payload})

    assert (row["outcome"], row["payload_record"], row["payload_keys"], row["payload_values"], row["payload_json"]) \
        == ("fired", record, keys, values, text)


def test_the_rule_engines_triggers_and_suppressions_become_log_rows():
    from pipeline.rules.trigger import Suppressed, Trigger, trigger_id

    fired = Trigger(trigger_id("vip", ["e1"]), "vip", "vip_arrival", "marketing", "m:7", "7", "S1", 100, 160,
                    ("e1",), {"store_id": "S1", "member_id": "7", "lifetime_revenue_cents": 9, "tier": None,
                              "arrival": "visitor", "visit_id": "v1"}, "VipArrivalPayload")
    held_back = Trigger(trigger_id("spike", ["e2", "e3"]), "spike", "store_complaint_spike", "service", None, None,
                        "S2", 200, 200, ("e2", "e3"), {"store_id": "S2"}, "StoreComplaintSpikePayload")

    records = trigger_log_records([fired], [Suppressed(held_back, "quiet_hours")], published_at=999)
    rows = [one_row("triggers_log", r) for r in records]

    assert [(r["outcome"], r["rule"], r["rule_type"], r["kind"], r["person_id"], r["reason"]) for r in rows] == [
        ("fired", "vip", "vip_arrival", "marketing", "m:7", ""),
        ("suppressed", "spike", "store_complaint_spike", "service", "", "quiet_hours")]
    assert (rows[0]["trigger_id"], rows[0]["event_time_ms"], rows[0]["fired_at_ms"], rows[0]["published_at_ms"]) == (
        fired.trigger_id, 100, 160, 999)
    assert rows[0]["payload_record"] == "VipArrivalPayload" and rows[0]["payload_values"][-2:] == ["null", "v1"]
    assert rows[1]["published_at_ms"] is None and rows[1]["cause_event_ids"] == ["e2", "e3"]


def test_an_unknown_trigger_outcome_is_refused():
    with pytest.raises(ValueError, match="outcome must be 'fired' or 'suppressed'"):
        rows_for("triggers_log", [{"rule": "r", "outcome": "maybe", "event_time": 1}])


def test_each_materialized_view_gives_every_column_of_its_target():
    for view in (v for v in OBJECTS.values() if isinstance(v, MaterializedView)):
        sql = view.create_sql()
        for column in view.target.columns:
            assert re.search(rf"\b{column.name}\b", sql), (view.name, column.name)
        for column in view.target.columns:
            if isinstance(column, Aggregate) and column.name not in view.feeds:
                assert f"{column.empty_state()} AS {column.name}" in sql


def test_a_view_never_aliases_a_source_column_to_itself_transformed():
    # ClickHouse 18.16 applies WHERE to such an alias inside a materialized view (seen here).
    for view in (v for v in OBJECTS.values() if isinstance(v, MaterializedView)):
        source = TABLES[view.source]
        for key, expression in view.keys.items():
            if any(c.name == key for c in source.columns):
                assert expression == key, (view.name, key)


def test_aggregates_must_be_if_functions():
    with pytest.raises(ValueError, match="-If function"):
        Aggregate("x", "uniqExact", ("String",))


def test_unknown_table_names_say_which_exist():
    with pytest.raises(KeyError, match="tables: events"):
        rows_for("event", [])


# --- migrations are the reviewed text of what tables.py renders ------------------------------------------


def _created(statement: str) -> str:
    return re.search(r"CREATE (?:MATERIALIZED )?(?:VIEW|TABLE) IF NOT EXISTS (\w+)", statement).group(1)


def test_migrations_are_numbered_in_order_without_gaps():
    names = [m.name for m in load_migrations()]

    assert names == sorted(names) and all(MIGRATION_NAME.match(n) for n in names)
    assert [int(n[:4]) for n in names] == list(range(1, len(names) + 1))


def test_each_create_in_a_migration_is_what_tables_py_renders():
    """Until a later migration alters an object; then the schema test (integration) is what holds."""
    statements = [s for m in load_migrations() for s in m.statements]
    altered = {m.group(1) for s in statements for m in [re.match(r"(?:ALTER TABLE|DROP \w+(?: IF EXISTS)?) (\w+)", s)] if m}
    for statement in statements:
        name = _created(statement) if statement.startswith("CREATE") else None
        if name and name not in altered:
            assert statement == create_sql(name), f"migration for {name} differs from sinks/tables.py"


def test_objects_are_created_after_what_they_read_and_write():
    order = [_created(s) for m in load_migrations() for s in m.statements if s.startswith("CREATE")]
    for name, obj in OBJECTS.items():
        if isinstance(obj, MaterializedView):
            assert order.index(obj.source) < order.index(name) and order.index(obj.target.name) < order.index(name)
    assert order.index("identity_links") < order.index("person_map")


def test_statements_split_at_semicolons_that_end_a_line():
    text = "-- a comment; not a statement\nCREATE TABLE a (x String DEFAULT ';') ENGINE = Log;\n\nSELECT 1;  \nSELECT 2"

    assert split_statements(text) == ["CREATE TABLE a (x String DEFAULT ';') ENGINE = Log", "SELECT 1", "SELECT 2"]


# --- literals -------------------------------------------------------------------------------------------


def test_literals_escape_quotes_and_backslashes():
    assert quote_string("it's a \\ test") == "'it\\'s a \\\\ test'"
    assert sql_literal([None, True, 3, 0.5, "x", ("a", 1)]) == "[NULL, 1, 3, 0.5, 'x', tuple('a', 1)]"


def test_a_non_finite_float_has_no_literal():
    with pytest.raises(ValueError):
        sql_literal(float("nan"))
