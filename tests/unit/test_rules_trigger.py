"""The trigger record: deterministic ids, the Avro contract (schemas/trigger.avsc), plain data."""

from __future__ import annotations

import io
import json

import fastavro
from test_rules_harness import DAY, MINUTE, T0, Pipeline, browse, checkin, complaint, purchase

from pipeline.events import history_versions, load_schema, schema_version
from pipeline.rules import RULE_TYPES, Trigger, load_rules, trigger_id
from pipeline.serde import strip_timestamp_logical_types


def test_trigger_id_depends_on_rule_and_the_set_of_causes_only():
    assert trigger_id("btv", ["b", "a"]) == trigger_id("btv", ["a", "b", "a"])
    assert trigger_id("btv", ["a"]) != trigger_id("btv2", ["a"])
    assert trigger_id("btv", ["a", "b"]) != trigger_id("btv", ["ab"])
    assert trigger_id("a", ["b"]) != trigger_id("ab", [])
    assert len(trigger_id("btv", ["a"])) == 32


def test_schema_history_holds_the_current_version():
    current = load_schema("trigger")
    assert history_versions("trigger") == list(range(1, schema_version(current) + 1))
    assert load_schema("trigger", schema_version(current)) == current


def test_every_rule_type_has_its_payload_branch_in_the_schema():
    union = next(f for f in load_schema("trigger")["fields"] if f["name"] == "payload")["type"]
    assert sorted(f"o2o.{branch['name']}" for branch in union) == sorted(cls.PAYLOAD_RECORD for cls in RULE_TYPES.values())


def one_of_each() -> list[Trigger]:
    """A run that fires every rule type once."""
    p = Pipeline(load_rules())
    p.feed(browse("b1", 0, member_id="42", sku="sku-1", properties={"tier": "gold"}),
           checkin("c1", 10, "associate", member_id="42", store="S1"),
           purchase("p1", 20, 100, member_id="42", store_id="S1", order_id="o-1"),
           complaint("k1", 0, member_id="7", store_id="S1", severity="high", consent_marketing=None),
           *[browse(f"a{i}", i, member_id="43", sku="sku-9") for i in range(3)])
    p.close_all()
    out = p.engine.on_aggregate("store_complaint_spike", [
        {"store_id": "S1", "window_start": T0, "window_end": T0 + 15 * MINUTE, "complaints": 5,
         "complaint_event_ids": ["k1", "k2", "k3", "k4", "k5"]}])
    out.extend(p.engine.on_aggregate("lapsed_member", [
        {"person_id": "m:50", "member_id": "50", "last_activity_at": T0, "last_event_id": "x",
         "evaluated_at": T0 + 31 * DAY}]))
    triggers = p.fired() + out.triggers
    assert sorted(t.rule_type for t in triggers) == sorted(RULE_TYPES), [t.rule_type for t in triggers]
    return triggers


def test_every_rule_types_trigger_round_trips_through_the_avro_schema():
    schema = fastavro.parse_schema(strip_timestamp_logical_types(load_schema("trigger")))
    for trigger in one_of_each():
        record = trigger.to_record(published_at=T0 + DAY)
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, schema, record)
        buffer.seek(0)
        assert fastavro.schemaless_reader(buffer, schema, schema, return_record_name=True) == record


def test_plain_form_round_trips_and_the_dry_run_form_is_json():
    for trigger in one_of_each():
        assert Trigger.from_plain(json.loads(json.dumps(trigger.to_plain()))) == trigger
        assert json.loads(json.dumps(trigger.to_dict()))["trigger_id"] == trigger.trigger_id


def test_topic_is_named_after_the_rule_instance():
    assert {t.topic() for t in one_of_each()} == {f"o2o.triggers.{r.name}" for r in load_rules().enabled()}
