"""Worker health endpoints and the consumer-lag gauge, against the real broker and ClickHouse."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import REGISTRY

from agents.lag import LagMonitor, watched_groups
from pipeline.producer import EventProducer
from pipeline.simulate import Mix, generate
from pipeline.stack import ClickHouse
from tests.conftest import wait_for


def get(port: int, path: str) -> tuple[int, dict | str]:
    """(status, JSON body or text); (0, reason) while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            status, body = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


@pytest.mark.timeout(180)
def test_readyz_follows_clickhouse_for_sink_workers_only(stack, pipeline_settings, start_worker):
    sink = start_worker(O2O_WORKER_AGENTS="sink")
    core = start_worker(O2O_WORKER_AGENTS="ingest,journey")
    for worker in (sink, core):
        wait_for(lambda w=worker: get(w.metrics_port, "/readyz")[0] == 200, 60, "the worker to be ready")
        assert get(worker.metrics_port, "/healthz") == (200, {"status": "ok"})
    assert get(sink.metrics_port, "/readyz")[1]["checks"] == {"broker": "ok", "clickhouse": "ok", "clickhouse_http": "ok"}
    assert get(core.metrics_port, "/readyz")[1]["checks"] == {"broker": "ok"}
    assert "o2o_consumer_lag" in get(sink.metrics_port, "/metrics")[1]
    assert 'o2o_gc_seconds_total{generation="2"}' in get(core.metrics_port, "/metrics")[1]
    assert "journey core: compiled (mypyc)" in core.log_path.read_text()  # said once, at start
    assert "journey core" not in sink.log_path.read_text()

    clickhouse = ClickHouse(stack)
    assert clickhouse.stop()
    try:
        status, doc = get(sink.metrics_port, "/readyz")
        assert status == 503, doc
        assert doc["status"] == "not ready" and doc["checks"]["broker"] == "ok"
        assert doc["checks"]["clickhouse"] != "ok" and "clickhouse not reachable" in doc["reason"]
        assert doc["checks"]["clickhouse_http"] != "ok" and "clickhouse_http not reachable" in doc["reason"]
        assert get(sink.metrics_port, "/healthz") == (200, {"status": "ok"})  # alive, just not ready
        assert get(core.metrics_port, "/readyz")[0] == 200  # needs no ClickHouse
    finally:
        clickhouse.start()
    wait_for(lambda: get(sink.metrics_port, "/readyz")[0] == 200, 30, "readiness once ClickHouse is back")
    assert sink.process.poll() is None and core.process.poll() is None, sink.log_tail() + core.log_tail()


def lag(group: str, topic: str) -> float | None:
    return REGISTRY.get_sample_value("o2o_consumer_lag", {"group": group, "topic": topic})


@pytest.mark.timeout(60)
def test_lag_counts_every_record_where_list_offsets_undercounts(stack, unique_topic):
    """Tansu answers ListOffsets(latest) with the last batch's base offset + 1 (DESIGN.md): after 3
    single records and a batch of 5 it says 4. The monitor reads watermarks from Fetch: 8."""
    topic = unique_topic("lag")
    producer = Producer({**stack.kafka_client_config(), "linger.ms": 100})
    for _ in range(3):
        producer.produce(topic, b"single", partition=0)
        producer.flush(10)
    for _ in range(5):
        producer.produce(topic, b"batched", partition=0)
    assert producer.flush(10) == 0
    group = f"lag-test-{uuid.uuid4().hex[:6]}"
    committer = Consumer({**stack.kafka_client_config(), "group.id": group, "enable.auto.commit": False})
    committer.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)

    stop = threading.Event()
    monitor = LagMonitor(stack, {group: [topic]}, stop, interval_s=0.5)
    monitor.start()
    try:
        wait_for(lambda: lag(group, topic) == 6, 30, "lag 8 - 2")
        committer.commit(offsets=[TopicPartition(topic, 0, 8)], asynchronous=False)
        wait_for(lambda: lag(group, topic) == 0, 30, "lag 0 once everything is committed")
    finally:
        stop.set()
        monitor.join(timeout=10)
        committer.close()


@pytest.mark.timeout(240)
def test_lag_gauge_goes_to_zero_once_the_pipeline_drains(pipeline_settings, start_worker):
    settings = pipeline_settings
    events = generate(3, start_ms=(int(time.time() * 1000) // 3_600_000 - 6) * 3_600_000, mix=Mix(persons=60))
    with EventProducer(settings) as producer:
        assert not producer.send_many(events)
    assert producer.stats.delivered == len(events)

    worker = start_worker()  # every agent: ingest, journey and sink in one process
    expected = {(group, topic) for group, topics in watched_groups(
        settings, {"ingest", "journey", "sink"}).items() for topic in topics}

    def lags() -> dict[tuple[str, str], float]:
        return {(k.split('group="')[1].split('"')[0], k.split('topic="')[1].split('"')[0]): v
                for k, v in worker.metrics().items() if k.startswith("o2o_consumer_lag{")}

    def drained() -> bool:
        current = lags()
        return (worker.total("o2o_journey_events_total") == len(events)
                and set(current) == expected and not any(current.values())
                and _events_stored(settings) == len(events))

    wait_for(drained, 180, "every group's lag at 0 with all events stored", interval_s=0.5)
    assert worker.total("o2o_events_accepted_total") == len(events)
    assert worker.total("o2o_journey_persons") > 0  # the state-size gauges are set per batch
    assert worker.process.poll() is None, worker.log_tail()


def _events_stored(settings) -> int:
    from clickhouse_driver import Client

    client = Client(**settings.clickhouse_client_kwargs())
    try:
        return client.execute("SELECT count() FROM events FINAL")[0][0]
    finally:
        client.disconnect()
