"""`o2o demo` as a newcomer runs it: one command, the whole loop, nothing left running."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.simulate import Mix, generate
from tests.conftest import free_port, private_stack_env

O2O = str(Path(sys.executable).parent / "o2o")


@pytest.mark.timeout(240)
def test_demo_runs_the_loop_and_stops_everything(tmp_path):
    env = private_stack_env(tmp_path / "state", O2O_METRICS_PORT=str(free_port()), O2O_KAFKA_SESSION_TIMEOUT_MS="6000")

    run = subprocess.run([O2O, "demo", "--persons", "40", "--json"], env=env, capture_output=True, text=True,
                         timeout=220)

    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)
    expected = len(generate(7, start_ms=int(time.time() * 1000), mix=Mix(persons=40)))
    assert (summary["accepted"], summary["dead_letters"], summary["duplicates"]) == (expected, 3, 0)
    assert summary["sessions"] > 0 and summary["visitors"] > 0 and summary["passersby"] > 0
    assert "sending" in run.stderr and "stopping" in run.stderr
    status = subprocess.run([O2O, "stack", "status", "--json"], env=env, capture_output=True, text=True, timeout=30)
    assert not any(c["running"] for c in json.loads(status.stdout)["components"].values())
