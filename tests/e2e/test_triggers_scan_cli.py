"""`o2o triggers scan` as a user runs it: the installed binary against the real broker and ClickHouse.

The warehouse holds the scan tests' fixed dataset (tests/integration/test_trigger_scan.py: two
store complaint spikes and five lapsed members at 2026-11-22T12:00Z, answers computed by hand),
written with the sink's own writer into the test's migrated database.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from clickhouse_driver import Client

from agents.changelog import read_to_end
from pipeline.serde import EventCodec
from pipeline.topics import TRIGGER_LOG
from sinks.writer import apply_person_merges, insert
from tests.conftest import free_port, settings_env, wait_for
from tests.integration import test_trigger_scan as data

O2O = str(Path(sys.executable).parent / "o2o")
AT = "2026-11-22T20:00:00+08:00"  # = data.NOW, 20:00 in Shanghai: outside quiet hours
RULES_YAML = """
rules:
  - {name: store_complaint_spike, type: store_complaint_spike, params: {window_min: 15, threshold: 3}}
  - {name: lapsed_member, type: lapsed_member, params: {days: 30}}
  - {name: complaint_recovery, type: complaint_recovery, params: {suppress_marketing_days: 7}}
"""


@pytest.fixture
def warehouse(pipeline_settings, tmp_path):
    client = Client(**pipeline_settings.clickhouse_client_kwargs())
    insert(client, "events", data.EVENTS)
    apply_person_merges(client, data.MERGES)
    client.disconnect()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_YAML)
    return pipeline_settings, {"O2O_RULES_FILE": str(rules)}


def o2o(settings, *args, **env):
    return subprocess.run([O2O, "triggers", "scan", *args], capture_output=True, text=True, timeout=120,
                          env=settings_env(settings, **env))


def topic_records(settings, name: str) -> list[dict]:
    codec = EventCodec()
    return [codec.decode_output(m.value())[1] for m in read_to_end(settings, settings.topic(f"triggers.{name}"))]


def decisions(settings) -> list[dict]:
    codec = EventCodec()
    return [d for m in read_to_end(settings, settings.topic(TRIGGER_LOG)) for d in codec.decode_outputs(m.value())[1]]


def expected_ids() -> dict[str, list[str]]:
    return {rule: sorted(ids) for rule, ids in data.expected_ids().items()}


def test_scan_publishes_the_triggers_and_decisions_and_a_second_scan_publishes_nothing_new(
        warehouse, start_worker):
    settings, env = warehouse
    run = o2o(settings, "--at", AT, "--json", **env)

    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert (doc["at"], doc["at_ms"], doc["rules"]) == (
        "2026-11-22T12:00:00.000Z", data.NOW, ["store_complaint_spike", "lapsed_member"])
    assert (doc["published"], doc["dry_run"], doc["suppressed"], doc["held"]) == (True, False, [], [])
    assert doc["rows"] == {"store_complaint_spike": 2, "lapsed_member": 5}
    assert doc["already_published"] == {"store_complaint_spike": [], "lapsed_member": []}
    fired = {rule: sorted(t["trigger_id"] for t in doc["triggers"] if t["rule"] == rule) for rule in expected_ids()}
    assert fired == expected_ids()

    spikes = topic_records(settings, "store_complaint_spike")
    lapsed = topic_records(settings, "lapsed_member")
    assert sorted(t["trigger_id"] for t in spikes) == expected_ids()["store_complaint_spike"]
    assert sorted(t["trigger_id"] for t in lapsed) == expected_ids()["lapsed_member"]
    s1 = next(t for t in spikes if t["store_id"] == "S1")
    assert s1["cause_event_ids"] == ["c-a", "c-m", "c-z"] and s1["kind"] == "service"
    assert s1["payload"]["complaints"] == 3 and s1["published_at"] is not None
    ivy = next(t for t in lapsed if t["member_id"] == "ivy")
    assert (ivy["person_id"], ivy["store_id"], ivy["cause_event_ids"]) == ("m:ivy", None, ["ivy-p"])
    logged = decisions(settings)
    assert sorted((d["outcome"], d["trigger_id"]) for d in logged) == sorted(
        ("fired", i) for ids in expected_ids().values() for i in ids)

    # The sink stores the decision log in triggers_log; the next scan finds every trigger there.
    start_worker(O2O_WORKER_AGENTS="sink")
    client = Client(**settings.clickhouse_client_kwargs())
    try:
        wait_for(lambda: client.execute("SELECT count() FROM triggers_log FINAL WHERE outcome = 'fired'")[0][0] == 7,
                 90, "the sink to store the 7 decisions")
    finally:
        client.disconnect()
    again = o2o(settings, "--at", AT, "--json", **env)

    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert (doc["triggers"], doc["published"], doc["already_published"]) == ([], False, expected_ids())
    assert len(topic_records(settings, "store_complaint_spike")) == 2
    assert len(topic_records(settings, "lapsed_member")) == 5


def test_dry_run_prints_what_would_fire_and_publishes_nothing(warehouse):
    settings, env = warehouse
    run = o2o(settings, "--at", AT, "--rule", "store_complaint_spike", "--dry-run", **env)

    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "trigger scan at 2026-11-22T12:00:00.000Z (event time) -- dry run, nothing published"
    assert lines[1] == "store_complaint_spike: 2 rows, 2 would fire, 0 suppressed, 0 held, 0 already published"
    assert "store S1" in run.stdout and "store S3" in run.stdout and "lapsed_member" not in run.stdout
    assert topic_records(settings, "store_complaint_spike") == []
    assert decisions(settings) == []


def test_in_quiet_hours_lapsed_members_are_held_not_published(warehouse):
    settings, env = warehouse
    run = o2o(settings, "--at", "2026-11-23T00:00:00+08:00", "--rule", "lapsed_member", "--json", **env)

    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["triggers"] == [] and len(doc["held"]) == 5 and doc["published"] is False
    assert {h["release_at"] for h in doc["held"]} == {"2026-11-23T00:00:00.000Z"}
    assert topic_records(settings, "lapsed_member") == []


def test_bad_rule_and_bad_time_are_explained(warehouse):
    settings, env = warehouse
    bad_rule = o2o(settings, "--rule", "complaint_recovery", **env)
    bad_time = o2o(settings, "--at", "yesterday", **env)

    assert bad_rule.returncode == 2
    assert "complaint_recovery: not an enabled aggregate rule" in bad_rule.stderr
    assert "enabled aggregate rules: store_complaint_spike, lapsed_member" in bad_rule.stderr
    assert bad_time.returncode == 2 and "--at 'yesterday' is not an ISO-8601 date" in bad_time.stderr


def test_clickhouse_down_or_not_migrated_is_explained(pipeline_settings):
    down = o2o(pipeline_settings, "--json", O2O_CLICKHOUSE_PORT=str(free_port()))
    bare = o2o(pipeline_settings, "--json", O2O_CLICKHOUSE_DATABASE="not_migrated_here")

    assert down.returncode == 1 and "cannot reach ClickHouse at 127.0.0.1:" in down.stderr
    assert "o2o stack up" in down.stderr and down.stdout == ""
    assert bare.returncode == 1 and "has no warehouse schema in database 'not_migrated_here'" in bare.stderr
    assert "run `o2o init`" in bare.stderr
