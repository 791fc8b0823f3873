"""Fixtures shared by the suite: one real local stack per test run, and helpers around it.

The stack (Tansu broker + ClickHouse server) starts once per run in a temporary state directory on
free ports, so two runs never collide, and stops at the end. There are no mocks of Kafka or
ClickHouse anywhere in the suite, and nothing skips when a service is missing: a missing service
fails the run with the stack's own explanation.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest
from clickhouse_driver import Client
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline.config import Settings, load_settings
from pipeline.stack import LocalStack

# Consumer groups on Tansu join in about half of session.timeout.ms (DESIGN.md): keep it short.
TEST_SESSION_TIMEOUT_MS = 6000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def private_stack_env(state_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for `o2o` commands that start a local stack of their own (state dir, free ports)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("O2O_")}
    env.update(
        O2O_STATE_DIR=str(state_dir),
        O2O_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
        O2O_CLICKHOUSE_PORT=str(free_port()),
        O2O_CLICKHOUSE_HTTP_PORT=str(free_port()),
        **extra,
    )
    return env


def stack_settings(state_dir: Path) -> Settings:
    return load_settings(
        None,
        state_dir=state_dir,
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        clickhouse_port=free_port(),
        clickhouse_http_port=free_port(),
        topic_prefix=f"t{uuid.uuid4().hex[:6]}",
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at a running local stack, started for this test run only."""
    settings = stack_settings(tmp_path_factory.mktemp("stack"))
    local = LocalStack(settings)
    local.up()
    try:
        yield settings
    finally:
        local.down()


@pytest.fixture
def unique_topic(stack: Settings) -> Callable[..., str]:
    """Create a fresh topic (explicit retention.ms: Tansu reports none otherwise) and return its name."""
    admin = AdminClient(stack.kafka_client_config())

    def create(prefix: str = "test", partitions: int = 1) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        futures = admin.create_topics([NewTopic(name, partitions, 1, config={"retention.ms": "3600000"})])
        futures[name].result(timeout=10)
        return name

    return create


def produce(settings: Settings, topic: str, values: list[bytes], key: Callable[[int], bytes] | None = None) -> None:
    """Produce all values and wait for every delivery report; raise on any failure."""
    producer = Producer({**settings.kafka_client_config(), "linger.ms": 5, "enable.idempotence": True})
    errors: list = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)

    for i, value in enumerate(values):
        while True:
            try:
                producer.produce(topic, value=value, key=key(i) if key else None, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
    remaining = producer.flush(30)
    assert remaining == 0 and not errors, f"{remaining} undelivered, errors: {errors[:3]}"


def consume(settings: Settings, topic: str, expected: int, timeout_s: float = 60.0, group: str | None = None) -> list:
    """Read `expected` messages with a consumer group (short session timeout); fail if they don't come."""
    consumer = Consumer({
        **settings.kafka_client_config(),
        "group.id": group or f"test-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": TEST_SESSION_TIMEOUT_MS,
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    messages: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=10_000, timeout=0.5):
                assert message.error() is None, message.error()
                messages.append(message)
    finally:
        consumer.close()
    assert len(messages) == expected, f"read {len(messages)} of {expected} messages from {topic}"
    return messages


@pytest.fixture
def producer_for(stack: Settings) -> Callable[[str, list[bytes]], None]:
    return lambda topic, values: produce(stack, topic, values)


@pytest.fixture
def consumer_for(stack: Settings) -> Callable[..., list]:
    return lambda topic, expected, **kw: consume(stack, topic, expected, **kw)


@pytest.fixture(scope="module")
def clickhouse_db(stack: Settings, request: pytest.FixtureRequest) -> Iterator[Client]:
    """A fresh ClickHouse database for the test module, dropped afterwards; the client uses it."""
    name = f"test_{request.module.__name__.rsplit('.', 1)[-1]}_{uuid.uuid4().hex[:6]}"
    admin = Client(**stack.clickhouse_client_kwargs(database="default"))
    admin.execute(f"CREATE DATABASE {name}")
    client = Client(**stack.clickhouse_client_kwargs(database=name))
    try:
        yield client
    finally:
        client.disconnect()
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.disconnect()


# --- SQL files on both engines ----------------------------------------------------------------------


class ServerSQL:
    """Runs SQL text on the Debian ClickHouse server over HTTP, the way clickhouse-client would.

    (clickhouse-driver waits forever for a data block after an `INSERT ... VALUES (...)` written
    inline in the query on 18.16; the HTTP interface takes any statement as text.)
    """

    def __init__(self, settings: Settings, database: str):
        query = urllib.parse.urlencode({"database": database, "default_format": "CSV"})
        self.url = f"http://{settings.clickhouse_host}:{settings.clickhouse_http_port}/?{query}"

    def run(self, sql: str) -> str:
        request = urllib.request.Request(self.url, data=sql.encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.read().decode()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"ClickHouse rejected:\n{sql}\n{exc.read().decode()}") from None

    def run_file(self, path: Path) -> list[str]:
        return [self.run(statement) for statement in split_sql(path.read_text())]


@pytest.fixture(scope="module")
def server_sql(stack: Settings, clickhouse_db: Client) -> ServerSQL:
    """SQL text on the Debian server, in the module's fresh database."""
    return ServerSQL(stack, clickhouse_db.connection.database)


class ModernClickHouse:
    """Runs SQL through chdb (a current ClickHouse engine embedded in the process).

    Later features prove their DDL and KPI SQL run on both the Debian 18.16 server and current
    ClickHouse: `modern_clickhouse.run_file(path)` executes every statement of a file here.
    """

    def __init__(self, path: Path):
        from chdb import session

        self.session = session.Session(str(path))

    def run(self, sql: str, fmt: str = "CSV") -> str:
        return str(self.session.query(sql, fmt))

    def run_file(self, path: Path) -> list[str]:
        return [self.run(statement) for statement in split_sql(path.read_text())]


def split_sql(text: str) -> list[str]:
    """Statements of a SQL file separated by ';' at line ends; '--' comment lines ignored."""
    lines = [line for line in text.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip().rstrip(";").strip()]


@pytest.fixture(scope="session")
def modern_clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModernClickHouse]:
    engine = ModernClickHouse(tmp_path_factory.mktemp("chdb"))
    yield engine
    engine.session.close()


# --- the pipeline's own processes ------------------------------------------------------------------


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for an `o2o` subprocess that uses the same stack and topics as `settings`."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("O2O_")}
    env.update(
        O2O_STATE_DIR=str(settings.state_dir),
        O2O_KAFKA_BOOTSTRAP_SERVERS=settings.kafka_bootstrap_servers,
        O2O_CLICKHOUSE_PORT=str(settings.clickhouse_port),
        O2O_CLICKHOUSE_HTTP_PORT=str(settings.clickhouse_http_port),
        O2O_CLICKHOUSE_DATABASE=settings.clickhouse_database,
        O2O_TOPIC_PREFIX=settings.topic_prefix,
        O2O_KAFKA_SESSION_TIMEOUT_MS=str(TEST_SESSION_TIMEOUT_MS),
        O2O_AGENT_BATCH_WAIT_MS="50",
    )
    env.update(extra)
    return env


@pytest.fixture
def pipeline_settings(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The stack's settings with topics and a ClickHouse database of the test's own, created and
    migrated like `o2o init` does; the database is dropped afterwards."""
    from agents.admin import create_topics, migrate_clickhouse

    prefix = f"m{uuid.uuid4().hex[:8]}"
    settings = stack.model_copy(update={
        "topic_prefix": prefix,
        "clickhouse_database": f"test_{prefix}",
        "kafka_session_timeout_ms": TEST_SESSION_TIMEOUT_MS,
        "state_dir": tmp_path_factory.mktemp("pipeline"),
    })
    create_topics(settings)
    migrate_clickhouse(settings)
    yield settings
    admin = Client(**stack.clickhouse_client_kwargs(database="default"))
    admin.execute(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
    admin.disconnect()


class WorkerProcess:
    """`o2o worker` as a real subprocess; metrics read from its Prometheus endpoint."""

    def __init__(self, settings: Settings, log_path: Path, **env: str):
        import subprocess
        import sys

        self.metrics_port = free_port()
        self.log_path = log_path
        command = [str(Path(sys.executable).parent / "o2o"), "worker"]
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT,
                env=settings_env(settings, O2O_METRICS_PORT=str(self.metrics_port), **env),
            )

    def metrics(self) -> dict[str, float]:
        """Samples as {'name{label="v",...}': value}; {} while the endpoint is not up yet."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return {}
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def total(self, metric: str) -> float:
        samples = self.metrics()
        return sum(v for k, v in samples.items() if k == metric or k.startswith(metric + "{"))

    def stop(self, kill: bool = False) -> None:
        if self.process.poll() is None:
            self.process.kill() if kill else self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except Exception:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def start_worker(pipeline_settings: Settings, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `o2o worker` processes on the module's topics; all are stopped after the test."""
    workers: list[WorkerProcess] = []

    def start(**env: str) -> WorkerProcess:
        worker = WorkerProcess(pipeline_settings, tmp_path / f"worker-{len(workers)}.log", **env)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()
        # Shown by pytest only when the test failed ("Captured stdout teardown"): what the worker said.
        print(f"--- {worker.log_path.name} (exit {worker.process.returncode}), last lines:\n{worker.log_tail()}")


def wait_for(condition: Callable[[], object], timeout_s: float = 60.0, what: str = "condition",
             interval_s: float = 0.2) -> object:
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)
