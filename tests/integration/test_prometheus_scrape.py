"""deploy/prometheus/prometheus.yml against a real `o2o worker`, scraped by Debian's real Prometheus.

The committed file finds workers by DNS (the Compose service name); the test keeps everything else
of it and points the worker job at the test worker's metrics port, starts `prometheus` on a free
port, and waits until Prometheus' HTTP API shows the worker up and the pipeline's metrics, then
runs every Prometheus query of the Grafana dashboards there.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from pipeline.config import Settings
from pipeline.serde import EventCodec
from pipeline.topics import ingress_topics
from tests.conftest import free_port, produce, wait_for
from tests.sql import grafana_macros as grafana

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "deploy" / "prometheus" / "prometheus.yml"
WORKER_JOB = "o2o-worker"


def committed() -> dict:
    return yaml.safe_load(COMMITTED.read_text())


def worker_job(config: dict) -> dict:
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == WORKER_JOB]
    assert len(jobs) == 1, f"one scrape job named {WORKER_JOB}"
    return jobs[0]


def config_for(metrics_port: int, prometheus_port: int) -> dict:
    """The committed configuration with the worker job pointed at a worker on this machine."""
    config = committed()
    config["global"]["scrape_interval"] = "1s"  # the test's only change to timing: results in seconds
    config["global"]["scrape_timeout"] = "1s"
    job = worker_job(config)
    job.pop("dns_sd_configs")
    job["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_port}"]}]
    for other in config["scrape_configs"]:
        if other["job_name"] == "prometheus":
            other["static_configs"] = [{"targets": [f"127.0.0.1:{prometheus_port}"]}]
    return config


class Prometheus:
    def __init__(self, config: dict, workdir: Path):
        self.port = free_port()
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.log = open(workdir / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            [shutil.which("prometheus") or "prometheus", f"--config.file={config_path}",
             f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def api(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())

    def query(self, expr: str) -> list[dict]:
        answer = self.api("query", query=expr)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # Prometheus shuts down cleanly on SIGTERM
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture
def start_prometheus(tmp_path):
    started: list[Prometheus] = []

    def start(config: dict) -> Prometheus:
        prometheus = Prometheus(config, tmp_path)
        started.append(prometheus)
        return prometheus

    yield start
    for prometheus in started:
        prometheus.stop()
        assert prometheus.process.returncode == 0, (prometheus.log.name, prometheus.process.returncode)


def test_committed_config_is_valid_and_scrapes_the_metrics_port_setting():
    check = subprocess.run(["promtool", "check", "config", str(COMMITTED)], capture_output=True, text=True, timeout=60)
    job = worker_job(committed())

    assert check.returncode == 0, check.stdout + check.stderr
    assert [sd["port"] for sd in job["dns_sd_configs"]] == [Settings.model_fields["metrics_port"].default] == [9464]
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_prometheus_scrapes_a_running_worker_and_its_pipeline_metrics(pipeline_settings, start_worker, start_prometheus):
    codec = EventCodec()
    now = int(time.time() * 1000)
    events = [{"event_id": f"prom-{i}", "event_type": "browse", "occurred_at": now - 60_000, "channel": "app",
               "member_id": f"m-{i}", "sku": f"sku-{i}"} for i in range(5)]
    # One key: the copy of events[0] must reach the partition of the original to count as a duplicate
    # (deduplication is per partition; the SDK routes by identity, a bare produce by key).
    produce(pipeline_settings, ingress_topics(pipeline_settings)["browse"],
            [codec.encode(e) for e in events] + [codec.encode(events[0]), b"not an event"], key=lambda _: b"prom")
    worker = start_worker()
    wait_for(lambda: worker.total("o2o_events_accepted_total") >= 5 and worker.total("o2o_dead_letters_total") >= 1
             and worker.total("o2o_duplicates_total") >= 1, 90, "the worker to process the events")

    prometheus = start_prometheus(config_for(worker.metrics_port, free_port()))
    wait_for(prometheus.ready, 30, "Prometheus ready")

    def worker_up() -> bool:
        targets = prometheus.api("targets")["data"]["activeTargets"]
        return any(t["labels"]["job"] == WORKER_JOB and t["health"] == "up" for t in targets)

    wait_for(worker_up, 30, "the worker target up in Prometheus")
    assert [float(r["value"][1]) for r in prometheus.query(f'up{{job="{WORKER_JOB}"}}')] == [1.0]
    accepted = wait_for(lambda: prometheus.query(f'sum(o2o_events_accepted_total{{job="{WORKER_JOB}"}})'),
                        30, "o2o_events_accepted_total queryable")
    assert float(accepted[0]["value"][1]) == 5.0
    dead = prometheus.query(f'o2o_dead_letters_total{{job="{WORKER_JOB}"}}')
    assert [(r["metric"]["reason"], float(r["value"][1])) for r in dead] == [("malformed", 1.0)]

    # Every Prometheus query of the dashboards is valid PromQL, and finds series whenever the worker
    # exports the metrics it reads (labelled counters appear with their first labelled event: no
    # visit closed here, so no o2o_visits_closed_total yet).
    wait_for(lambda: prometheus.query(f'count(count_over_time(up{{job="{WORKER_JOB}"}}[1m]) >= 2)'), 30,
             "two scrapes, so rates have points")
    exported = {sample.split("{")[0] for sample in worker.metrics()}
    build = grafana.load_generator()
    checked = 0
    for model in build.dashboards().values():
        for title, target in grafana.targets(model, "prometheus"):
            expr = target["expr"].replace("$__rate_interval", "1m")
            assert "$" not in expr, f"{title}: a Grafana variable the test does not expand: {expr}"
            result = prometheus.query(expr)
            metrics = set(re.findall(r"\b((?:o2o|process)_[a-z_]+)\b", expr))
            if metrics <= exported:
                assert result, f"{title}: {expr} finds nothing"
                checked += 1
    assert checked >= 10
