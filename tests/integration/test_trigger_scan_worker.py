"""The worker's scheduled scan of the aggregate rules: a real `o2o worker` on the real broker and
ClickHouse fires a store complaint spike once, and later scans do not publish it again."""

from __future__ import annotations

import time

from clickhouse_driver import Client

from pipeline.rules import trigger_id
from sinks.writer import insert
from tests.conftest import wait_for
from tests.e2e.test_triggers_scan_cli import topic_records
from tests.integration.test_trigger_scan import at, complaint

MINUTE = 60_000
RULES_YAML = """
rules:
  - {name: store_complaint_spike, type: store_complaint_spike, params: {window_min: 15, threshold: 3, every_min: 0.02}}
  - {name: lapsed_member, type: lapsed_member, params: {days: 30, every_h: 1}}
"""


def test_the_worker_scans_on_its_timer_and_publishes_a_spike_once(pipeline_settings, start_worker, tmp_path):
    now = int(time.time() * 1000)
    client = Client(**pipeline_settings.clickhouse_client_kwargs())
    insert(client, "events", [complaint(f"w-{i}", at(now - (4 - i) * MINUTE), "S9") for i in range(3)])
    client.disconnect()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES_YAML)

    worker = start_worker(O2O_RULES_FILE=str(rules), O2O_RULES_SCAN_INTERVAL_S="1")

    def scans(rule: str) -> float:
        return worker.metrics().get(f'o2o_trigger_scans_total{{outcome="ok",rule="{rule}"}}', 0)

    wait_for(lambda: topic_records(pipeline_settings, "store_complaint_spike"), 90, "the spike alert")
    first = scans("store_complaint_spike")
    # every_min 0.02 (1.2 s): the spike rule runs about every second tick; lapsed_member once an hour.
    wait_for(lambda: scans("store_complaint_spike") >= first + 3, 60, "three more scans of the spike rule")

    (alert,) = topic_records(pipeline_settings, "store_complaint_spike")
    assert alert["trigger_id"] == trigger_id("store_complaint_spike", ["w-0", "w-1", "w-2"])
    assert alert["store_id"] == "S9" and alert["payload"]["complaints"] == 3
    assert scans("lapsed_member") == 1
    assert worker.total("o2o_triggers_published_total") == 1
    assert worker.process.poll() is None, worker.log_tail()
