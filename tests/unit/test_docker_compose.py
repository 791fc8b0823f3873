"""docker-compose.yml agrees with the project's configuration, Prometheus and Grafana provisioning.

No Docker engine runs here, so the file is checked as data: it parses, the services and ports are
there, every O2O_* variable is a real setting with a value the settings accept, and the ports and
names the services use are the ones the settings, deploy/prometheus and deploy/grafana expect.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pipeline.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
_INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?([-?]))?([^}]*)\}")


def resolve(value: object) -> str:
    """Compose interpolation: ${X:-default} gives the default, ${X:?message} (required) a stand-in."""
    def one(match: re.Match) -> str:
        name, kind, rest = match.groups()
        if kind == "-":
            return rest
        return f"value-of-{name.lower()}"
    return _INTERPOLATION.sub(one, str(value))


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: resolve(v) for k, v in env.items()}


def host_ports(service: str) -> dict[int, int]:
    """container port -> host port."""
    mapped = {}
    for entry in SERVICES[service].get("ports", []):
        host, _, container = str(entry).rpartition(":")
        mapped[int(container)] = int(host)
    return mapped


def test_the_stack_has_kafka_in_kraft_mode_clickhouse_prometheus_grafana_and_workers():
    assert set(SERVICES) == {"kafka", "clickhouse", "prometheus", "grafana", "init", "worker"}
    kafka = environment("kafka")
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"] and "KAFKA_ZOOKEEPER_CONNECT" not in kafka
    assert SERVICES["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert SERVICES["prometheus"]["image"].startswith("prom/prometheus:")
    assert SERVICES["grafana"]["image"].startswith("grafana/grafana:")


@pytest.mark.parametrize("service", ["init", "worker", "grafana"])
def test_every_o2o_variable_is_a_real_setting_with_an_accepted_value(service):
    env = environment(service)
    o2o = {k: v for k, v in env.items() if k.startswith("O2O_")}
    known = {f"O2O_{name.upper()}" for name in Settings.model_fields}

    assert o2o, f"{service} sets no O2O_* setting"
    assert set(o2o) <= known, f"not settings: {sorted(set(o2o) - known)}"
    Settings(**{k[4:].lower(): v for k, v in o2o.items()})  # raises on a value the setting refuses


def test_workers_and_init_run_the_cli_with_the_same_settings():
    assert SERVICES["init"]["command"] == ["init"] and SERVICES["worker"]["command"] == ["worker"]
    assert environment("init") == environment("worker")
    assert SERVICES["init"]["build"] == SERVICES["worker"]["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
    assert SERVICES["worker"]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert {"kafka", "clickhouse"} <= set(SERVICES["init"]["depends_on"])
    env = environment("worker")
    assert env["O2O_MODE"] == "prod" and env["O2O_HASH_SECRET"]  # prod refuses to start without it
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["o2o"]' in dockerfile
    for package in ("pipeline", "agents", "sinks", "schemas"):
        assert f"COPY {package} ./{package}" in dockerfile


def test_workers_scale_the_metrics_port_is_scraped_and_nothing_pins_one_container():
    worker = SERVICES["worker"]
    job = next(j for j in yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())["scrape_configs"]
               if j["job_name"] == "o2o-worker")

    assert "container_name" not in worker and "ports" not in worker  # `--scale worker=N` needs both absent
    port = int(environment("worker")["O2O_METRICS_PORT"])
    assert [str(port)] == [str(p) for p in worker["expose"]]
    assert job["dns_sd_configs"] == [{"names": ["worker"], "type": "A", "port": port, "refresh_interval": "30s"}]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in SERVICES["prometheus"]["volumes"]


def test_ports_match_the_settings():
    env = environment("worker")
    defaults = Settings()
    kafka = environment("kafka")
    host, _, port = env["O2O_KAFKA_BOOTSTRAP_SERVERS"].rpartition(":")

    # inside the network: the workers reach the services by name on their listening ports
    assert host == "kafka" and f"INTERNAL://{host}:{port}" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert f"INTERNAL://:{port}" in kafka["KAFKA_LISTENERS"]
    assert env["O2O_CLICKHOUSE_HOST"] == "clickhouse" and int(env["O2O_CLICKHOUSE_PORT"]) in host_ports("clickhouse")
    assert int(env["O2O_CLICKHOUSE_HTTP_PORT"]) in host_ports("clickhouse")  # the events sink inserts over HTTP
    # from the host: the default settings (the local stack's ports) reach the same services
    default_kafka_port = int(defaults.kafka_bootstrap_servers.rpartition(":")[2])
    assert f"HOST://127.0.0.1:{default_kafka_port}" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert host_ports("kafka") == {default_kafka_port: default_kafka_port}
    assert host_ports("clickhouse") == {int(env["O2O_CLICKHOUSE_PORT"]): defaults.clickhouse_port,
                                        8123: defaults.clickhouse_http_port}
    assert environment("clickhouse")["CLICKHOUSE_PASSWORD"] == env["O2O_CLICKHOUSE_PASSWORD"]
    assert environment("clickhouse")["CLICKHOUSE_DB"] == env["O2O_CLICKHOUSE_DATABASE"]
    assert host_ports("prometheus") == {9090: 9090} and host_ports("grafana") == {3000: 3000}


def test_grafana_installs_the_clickhouse_plugin_and_provisions_the_dashboards():
    grafana = SERVICES["grafana"]
    env = environment("grafana")
    datasources = (ROOT / "deploy/grafana/provisioning/datasources/o2o.yaml").read_text()
    providers = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/o2o.yaml").read_text())["providers"]

    assert "grafana-clickhouse-datasource" in env["GF_INSTALL_PLUGINS"].split(",")
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    assert f"./deploy/grafana/dashboards:{providers[0]['options']['path']}:ro" in grafana["volumes"]
    referenced = set(re.findall(r"\$\{(O2O_[A-Z_]+)\}", datasources))
    assert referenced and referenced <= set(env)
    worker = environment("worker")
    assert {k: env[k] for k in referenced} == {k: worker[k] for k in referenced}
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "deploy/grafana/dashboards" / Path(home).name).exists()
    assert "http://prometheus:9090" in datasources
