"""`o2o init` and `o2o produce` as a user runs them, against the real broker."""

import json
import subprocess
import sys
from pathlib import Path

from agents.changelog import read_to_end
from pipeline.serde import EventCodec
from pipeline.topics import ingress_topics
from tests.conftest import free_port, settings_env

O2O = str(Path(sys.executable).parent / "o2o")
RAW_MAC = "AA-BB-CC-00-11-22"

LINES = [
    '{"event_id": "e1", "event_type": "browse", "occurred_at": "2026-11-22T10:00:00+08:00", "channel": "app", "member_id": "m1", "sku": "sku-1"}',
    f'{{"event_id": "e2", "event_type": "wifi_checkin", "occurred_at": 1795314600000, "channel": "wifi", "wifi_mac": "{RAW_MAC}", "store_id": "s1", "kind": "associate", "rssi": -60}}',
    '{"event_id": "e3", "event_type": "purchase", "occurred_at": "2026-11-22T10:40:00+08:00", "channel": "pos", "member_id": "m1", "order_id": "o1", "status": "paid", "amount_cents": -5}',
    "not json at all",
    "",
    '{"event_id": "e4", "event_type": "share", "occurred_at": "2026-11-22T11:00:00Z", "channel": "app", "memberId": "m1", "platform": "wechat"}',
]


def o2o(env, *args, **kwargs):
    return subprocess.run([O2O, *args], env=env, capture_output=True, text=True, timeout=120, **kwargs)


def test_init_is_idempotent(pipeline_settings):
    env = settings_env(pipeline_settings, O2O_CLICKHOUSE_DATABASE=f"init_{pipeline_settings.topic_prefix}")
    first = o2o(env, "init")
    assert first.returncode == 0, first.stderr
    assert "applied 0001_events.sql" in first.stdout

    again = o2o(env, "init")
    assert again.returncode == 0, again.stderr
    *topics, clickhouse = again.stdout.splitlines()
    assert all(line.startswith("exists ") for line in topics)
    assert pipeline_settings.topic("dlq") in again.stdout
    assert clickhouse.endswith("schema up to date")


def test_produce_sends_valid_lines_hashed_and_writes_rejects_with_reasons(pipeline_settings, tmp_path):
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("\n".join(LINES) + "\n")

    run = o2o(settings_env(pipeline_settings), "produce", "--file", str(events_file), "--json")

    assert run.returncode == 1, "rejected lines make the exit code 1"
    summary = json.loads(run.stdout)
    assert (summary["read"], summary["delivered"], summary["failed"]) == (5, 2, 0)
    assert summary["rejected"] == {"invalid_value": 1, "malformed": 1, "schema": 1}
    rejects = [json.loads(line) for line in Path(summary["rejects_file"]).read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [(3, "invalid_value"), (4, "malformed"), (6, "schema")]
    assert "memberId" in rejects[2]["detail"] and rejects[1]["input"] == "not json at all"

    codec = EventCodec()
    sent = {}
    for topic in ingress_topics(pipeline_settings).values():
        for message in read_to_end(pipeline_settings, topic):
            assert RAW_MAC.lower().encode() not in message.value().lower()
            sent.update({e["event_id"]: e for e in codec.decode(message.value())})
    assert set(sent) == {"e1", "e2"}
    assert sent["e2"]["wifi_mac_hash"] and "wifi_mac" not in sent["e2"]


def test_produce_from_stdin_with_all_lines_valid_exits_0_and_leaves_no_reject_file(pipeline_settings, tmp_path):
    run = o2o(settings_env(pipeline_settings), "produce", "--file", "-", input=LINES[0] + "\n", cwd=tmp_path)

    assert run.returncode == 0, run.stderr
    assert "read 1 events: 1 delivered" in run.stdout
    assert not (tmp_path / "stdin.rejects.jsonl").exists()


def test_produce_without_a_broker_says_what_to_do(pipeline_settings, tmp_path):
    events_file = tmp_path / "events.jsonl"
    events_file.write_text(LINES[0] + "\n")
    env = settings_env(pipeline_settings, O2O_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")

    run = o2o(env, "produce", "--file", str(events_file))

    assert run.returncode == 1
    assert "cannot reach Kafka" in run.stderr and "o2o stack up" in run.stderr
    assert "Traceback" not in run.stderr
