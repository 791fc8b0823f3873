"""`o2o stack up / status / down` as a user runs them, on a state directory and ports of its own."""

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import private_stack_env

O2O = str(Path(sys.executable).parent / "o2o")


def pid_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def user_env(tmp_path):
    env = private_stack_env(tmp_path / "state")
    yield env
    subprocess.run([O2O, "stack", "down"], env=env, capture_output=True, timeout=60)


def o2o(env, *args, timeout=60):
    return subprocess.run([O2O, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_up_status_down_leaves_nothing_running(user_env):
    up = o2o(user_env, "stack", "up")
    assert up.returncode == 0, up.stderr
    assert "broker: started" in up.stdout and "clickhouse: started" in up.stdout

    status = o2o(user_env, "stack", "status", "--json")
    assert status.returncode == 0, status.stderr
    components = json.loads(status.stdout)["components"]
    assert components["broker"]["running"] and components["clickhouse"]["running"]
    assert components["broker"]["address"] == user_env["O2O_KAFKA_BOOTSTRAP_SERVERS"]
    assert components["clickhouse"]["version"].startswith("clickhouse ")
    pids = [components[name]["pid"] for name in ("broker", "clickhouse")]
    assert all(pid_running(pid) for pid in pids)

    down = o2o(user_env, "stack", "down")
    assert down.returncode == 0, down.stderr
    assert not any(pid_running(pid) for pid in pids)
    after = o2o(user_env, "stack", "status", "--json")
    assert after.returncode == 1
    assert not any(c["running"] for c in json.loads(after.stdout)["components"].values())


def test_up_twice_and_down_twice_are_harmless(user_env):
    assert o2o(user_env, "stack", "up").returncode == 0
    again = o2o(user_env, "stack", "up")
    assert again.returncode == 0 and "already running" in again.stdout

    assert o2o(user_env, "stack", "down").returncode == 0
    idle = o2o(user_env, "stack", "down")
    assert idle.returncode == 0 and "was not running" in idle.stdout


def test_a_taken_port_is_a_clear_error_and_starts_nothing(user_env):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(user_env["O2O_CLICKHOUSE_PORT"])))
        squatter.listen()

        up = o2o(user_env, "stack", "up", timeout=30)

    assert up.returncode == 1
    assert f"port {user_env['O2O_CLICKHOUSE_PORT']} on 127.0.0.1 is already taken" in up.stderr
    status = json.loads(o2o(user_env, "stack", "status", "--json").stdout)["components"]
    assert not status["broker"]["running"], "the broker started before the failure must be stopped"


def test_missing_clickhouse_says_how_to_install_it(user_env, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**user_env, "PATH": str(bin_dir)}
    assert shutil.which("clickhouse-server", path=env["PATH"]) is None

    up = o2o(env, "stack", "up")

    assert up.returncode == 1
    assert "apt-get install clickhouse-server" in up.stderr and "Traceback" not in up.stderr
