"""`o2o collector` as an operator runs it: a config file, flags over the file, clear errors, SIGTERM."""

import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.collector_payloads import SECRET, STORE_MAP, VALIDATOR, meraki_v2
from tests.conftest import free_port, settings_env, wait_for

O2O = str(Path(sys.executable).parent / "o2o")
KEY = "cli-test-key-0123456789"


def write_config(tmp_path: Path, port: int, store_map: str | None = None, key: str = KEY) -> Path:
    stores = tmp_path / "stores.json"
    stores.write_text(json.dumps(STORE_MAP))
    config = tmp_path / "collector.toml"
    config.write_text(f"""
[collector]
host = "0.0.0.0"
port = {port}
max_events_per_request = 10

[[collector.api_keys]]
key = "{key}"
source = "pos-terminal"
types = ["purchase", "browse"]

[meraki]
validator = "{VALIDATOR}"
secret = "{SECRET}"
store_map = "{store_map or stores}"
""")
    return config


def call(url: str, body: dict | None = None, key: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_collector_runs_from_a_config_file_with_flags_winning_and_stops_on_sigterm(pipeline_settings, tmp_path):
    port = free_port()
    config = write_config(tmp_path, port=free_port())  # the file's port is overridden by --port
    process = subprocess.Popen([O2O, "collector", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
                               env=settings_env(pipeline_settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url + "/healthz"), 30, "the collector to answer")
        assert call(url + "/v1/gateways/meraki") == (200, VALIDATOR.encode())
        status, body = call(url + "/v1/gateways/meraki", meraki_v2())
        assert status == 202 and json.loads(body)["accepted"] == 2
        purchase = {"event_id": "o-1", "event_type": "purchase", "occurred_at": 1795314600000, "channel": "pos",
                    "member_id": "m-1", "order_id": "o-1", "status": "paid", "amount_cents": 1999}
        status, body = call(url + "/v1/events", [purchase], key=KEY)
        assert status == 202 and json.loads(body)["accepted"] == 1
        status, body = call(url + "/v1/events", [purchase] * 11, key=KEY)
        assert status == 413 and b"limit is 10" in body
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr.decode()
    assert f"collector listening on http://127.0.0.1:{port}" in stderr.decode()
    assert KEY not in stderr.decode()


def test_config_shows_the_collector_keys_masked(pipeline_settings, tmp_path):
    run = subprocess.run([O2O, "config", "--config", str(write_config(tmp_path, 8088)), "--json"],
                         env=settings_env(pipeline_settings), capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    settings = json.loads(run.stdout)
    assert settings["collector_api_keys"][0]["source"] == "pos-terminal"
    assert KEY not in run.stdout and SECRET not in run.stdout


def test_bad_settings_exit_2_and_say_what_is_wrong(pipeline_settings, tmp_path):
    bad_map = tmp_path / "bad-stores.json"
    bad_map.write_text(json.dumps({"aps": {"not-a-mac": "s1"}}))
    cases = [({"store_map": str(bad_map)}, "not a MAC address"),
             ({"store_map": str(tmp_path / "missing.json")}, "cannot read it"),
             ({"key": "tiny-key-x"}, "at least 16 characters")]
    for n, (changes, words) in enumerate(cases):
        (tmp_path / str(n)).mkdir()
        config = write_config(tmp_path / str(n), free_port(), **changes)
        run = subprocess.run([O2O, "collector", "--config", str(config)], env=settings_env(pipeline_settings),
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 2, run.stderr
        assert words in run.stderr and "tiny-key-x" not in run.stderr


def test_no_broker_or_a_taken_port_exit_1_and_say_what_to_do(pipeline_settings, tmp_path):
    env = settings_env(pipeline_settings, O2O_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    run = subprocess.run([O2O, "collector", "--port", str(free_port())], env=env, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1 and "o2o stack up" in run.stderr

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run([O2O, "collector", "--port", str(port)], env=settings_env(pipeline_settings),
                             capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in run.stderr and "--port" in run.stderr


def _answers(url: str) -> bool:
    try:
        return call(url)[0] == 200
    except OSError:
        return False
