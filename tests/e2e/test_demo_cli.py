"""`o2o demo` as a newcomer runs it: one command, the whole loop, nothing left running."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port, private_stack_env, wait_for

O2O = str(Path(sys.executable).parent / "o2o")

SUMMARY_KEYS = {
    "produced", "good_events", "bad_records", "late_events", "accepted", "duplicates", "dead_letters",
    "dead_letters_by_reason", "person_merges", "sessions", "visits", "triggers_by_rule", "triggers",
    "clickhouse_rows", "throughput_events_per_s", "trigger_latency_p99_s", "clickhouse_freshness_p99_s", "rate",
    "duration_s", "persons", "stores", "seed", "simulated_from", "elapsed_s", "workers", "kept_running",
}


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    return state == "Z"  # exited, not yet reaped by its (exited) parent's reaper


def stack_stopped(env: dict) -> bool:
    status = subprocess.run([O2O, "stack", "status", "--json"], env=env, capture_output=True, text=True, timeout=30)
    return not any(c["running"] for c in json.loads(status.stdout)["components"].values())


@pytest.mark.timeout(300)
def test_demo_runs_the_loop_accounts_for_every_event_and_stops_everything(tmp_path):
    env = private_stack_env(tmp_path / "state", O2O_METRICS_PORT=str(free_port()), O2O_KAFKA_SESSION_TIMEOUT_MS="6000")

    run = subprocess.run([O2O, "demo", "--duration", "20", "--rate", "500", "--persons", "500", "--json"], env=env,
                         capture_output=True, text=True, timeout=280)

    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)  # stdout is the one JSON document; the view went to stderr
    assert set(summary) == SUMMARY_KEYS
    assert summary["produced"] == summary["good_events"] + summary["bad_records"] > 8000
    assert summary["accepted"] + summary["duplicates"] + summary["dead_letters"] == summary["produced"]
    assert summary["dead_letters"] == summary["bad_records"] > 0  # each deliberately bad record, one dead letter
    assert sum(summary["dead_letters_by_reason"].values()) == summary["dead_letters"]
    assert summary["clickhouse_rows"]["events"] == summary["accepted"]
    assert set(summary["clickhouse_rows"]) >= {"events", "sessions", "store_visits", "triggers_log", "identity_links"}
    assert any(count > 0 for count in summary["triggers_by_rule"].values()), summary["triggers_by_rule"]
    assert summary["triggers"] == sum(summary["triggers_by_rule"].values())
    assert summary["sessions"]["total"] > 0 and summary["visits"]["visitors"] > 0 and summary["visits"]["passersby"] > 0
    assert 0 < summary["throughput_events_per_s"] <= 600  # paced at 500/s
    assert summary["trigger_latency_p99_s"] > 0 and summary["clickhouse_freshness_p99_s"] > 0
    assert summary["kept_running"] is False
    assert "drained" in run.stderr and "Where to look next" in run.stderr and "stopping" in run.stderr
    assert "Footfall" in run.stderr  # the `o2o report` KPIs
    for worker in summary["workers"]:
        assert gone(worker["pid"]), f"worker {worker['name']} (pid {worker['pid']}) still runs"
    assert stack_stopped(env)


@pytest.mark.timeout(240)
def test_ctrl_c_stops_everything_the_demo_started(tmp_path):
    env = private_stack_env(tmp_path / "state", O2O_METRICS_PORT=str(free_port()), O2O_KAFKA_SESSION_TIMEOUT_MS="6000")
    log = tmp_path / "demo.log"
    with open(log, "w") as out:
        demo = subprocess.Popen([O2O, "demo", "--duration", "120", "--rate", "200", "--persons", "300"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: demo.poll() is not None or "producing" in log.read_text(), 150, "the demo to be producing")
        assert demo.poll() is None, log.read_text()[-3000:]
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=90) == 130, log.read_text()[-3000:]
    finally:
        if demo.poll() is None:
            demo.kill()
    text = log.read_text()
    pids = [int(pid) for pid in re.findall(r"o2o worker --agents \S+, pid (\d+)", text)]
    assert len(pids) == 2, text
    assert all(gone(pid) for pid in pids), text[-2000:]
    assert stack_stopped(env)
    assert "interrupted: everything the demo started is stopped" in text
