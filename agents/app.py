"""The faust-streaming app: settings in, agents registered, a worker out. No domain logic here."""

from __future__ import annotations

import gc
import logging
import signal
import ssl
import threading
from contextlib import contextmanager
from typing import Any, Awaitable, Callable, Iterator

import faust
from confluent_kafka import Consumer
from faust.transport.drivers import aiokafka as faust_aiokafka

from pipeline.compiled import core_is_compiled, core_status
from pipeline.config import Settings

# Per partition and Fetch, for the agents and the sink. The clients' 1 MiB is two o2o.accepted or
# o2o.resolved records (up to 512 KiB each): a journey working off a backlog then cycled (outputs,
# acks, changelog) every ~2,000 events, and the events sink fell seconds behind the journey.
FETCH_BYTES_PER_PARTITION = 8 * 1024 * 1024

log = logging.getLogger("o2o.worker")


def group_consumer(settings: Settings, group: str, fetch_max_wait_ms: int, partition_eof: bool = False) -> Consumer:
    """A confluent-kafka consumer of `group` for the agents in threads (ingest, sink): offsets
    committed by hand after a batch is stored, a new group starting at the earliest offset;
    `partition_eof`: poll() also reports reaching the end of a partition (_PARTITION_EOF)."""
    return Consumer({
        **settings.kafka_client_config(),
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.kafka_session_timeout_ms,
        "fetch.wait.max.ms": fetch_max_wait_ms,
        "max.partition.fetch.bytes": FETCH_BYTES_PER_PARTITION,
        "enable.partition.eof": partition_eof,
    })


class PromptConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust asks the broker to hold a fetch with no data for up to 1.5 s (hard-coded). Apache Kafka
    answers as soon as data arrives; the local broker (Tansu) holds it, which added 0.4-1.5 s to
    every hop (measured: p50 0.44 s per hop at 5 records/s). Fetches here wait at most
    `kafka_fetch_max_wait_ms`; set before the worker starts."""

    fetch_max_wait_ms = 50

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # read by aiokafka's Fetcher at start()
        return consumer


class PromptConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> PromptConsumerThread:
        return PromptConsumerThread(self, loop=self.loop, beacon=self.beacon)


def create_app(settings: Settings) -> faust.App:
    PromptConsumerThread.fetch_max_wait_ms = settings.kafka_fetch_max_wait_ms
    faust_aiokafka.Transport.Consumer = PromptConsumer
    from agents import journey, scan

    app = faust.App(
        f"{settings.topic_prefix}-pipeline",
        broker=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap_servers.split(",")],
        broker_credentials=broker_credentials(settings),
        store="memory://",  # state lives in our own changelogs (agents/changelog.py), not faust Tables
        datadir=str(settings.state_dir / "worker"),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        topic_allow_declare=False,  # `o2o init` owns topic creation
        topic_disable_leader=True,
        broker_session_timeout=settings.kafka_session_timeout_ms / 1000,
        broker_heartbeat_interval=max(0.5, settings.kafka_session_timeout_ms / 10_000),
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=FETCH_BYTES_PER_PARTITION,
        producer_acks=-1,
        web_enabled=False,
        # An agent that crashes takes the worker down (exit code != 0) instead of idling: its batch
        # was not acknowledged, so a restarted worker (or another one) reads it again.
        agent_supervisor="mode.CrashingSupervisor",
    )
    if "journey" in settings.worker_agents.split(","):
        journey.register(app, settings)
        scan.register(app, settings)  # the aggregate trigger rules, run by the worker owning the journey partition
    return app


def raw_topic(app: faust.App, name: str, partitions: int) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                     partitions=partitions)


def raw_sender(app: faust.App) -> Callable[..., Awaitable[Awaitable[Any]]]:
    """`await send(topic, value, partition=None, timestamp=None)`: one record of a raw topic, straight
    to the app's producer; the result is the acknowledgement to await.

    faust's `Topic.send` wraps every record in message objects, callbacks and sensor updates: 200 us
    a record against 35 us this way (measured on the journey's trigger sends, one record each)."""
    async def send(topic: faust.TopicT, value: bytes, partition: int | None = None,
                   timestamp: float | None = None) -> Awaitable[Any]:
        return await app.producer.send(topic.get_topic_name(), None, value, partition, timestamp, None)
    return send


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """faust's form of the Kafka security settings (the same settings confluent-kafka clients use)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=str(settings.kafka_ssl_ca_location) if settings.kafka_ssl_ca_location else None)
    if settings.kafka_ssl_certificate_location and settings.kafka_ssl_key_location:
        password = settings.kafka_ssl_key_password.get_secret_value() if settings.kafka_ssl_key_password else None
        context.load_cert_chain(settings.kafka_ssl_certificate_location, settings.kafka_ssl_key_location, password)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username, password=password,
        mechanism=settings.kafka_sasl_mechanism or "PLAIN",
        ssl_context=context if protocol == "SASL_SSL" else None,
    )


def run_worker(settings: Settings) -> None:
    """Run one worker with the agents of `worker_agents` until SIGTERM/SIGINT; serves Prometheus
    metrics, /healthz and /readyz (agents/health.py) and the consumer-lag gauge (agents/lag.py).
    The journey is a faust agent; ingest (agents/ingest.py) and the sink (agents/sink.py) run in
    threads on confluent-kafka."""
    from agents import metrics
    from agents.health import serve
    from agents.ingest import IngestAgent
    from agents.lag import LagMonitor, watched_groups
    from agents.sink import start_sinks

    wanted = set(settings.worker_agents.split(","))
    stop = threading.Event()
    tune_gc()
    metrics.observe_gc()  # o2o_gc_seconds_total: what the collector costs this worker
    if settings.metrics_port:
        serve(settings, settings.metrics_port, with_clickhouse="sink" in wanted)
        LagMonitor(settings, watched_groups(settings, wanted), stop).start()
    threads = start_sinks(settings, stop) if "sink" in wanted else []
    if "ingest" in wanted:
        threads.append(IngestAgent(settings, stop))
        threads[-1].start()
    try:
        if "journey" in wanted:
            if core_is_compiled():
                log.info("journey core: %s", core_status())
            else:
                log.warning("journey core: %s", core_status())
            run_faust_worker(settings)
        else:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            stop.wait()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)


def tune_gc() -> None:
    """Collect garbage far less often than Python's default (every 700 net allocations).

    Agents hold tens of thousands of live session objects, and every batch allocates millions of
    short-lived ones; full collections walking all of them cost 15-20 % of the journey stage
    (bench/core_bench.py --gc) and 30-70 % of the sink's row building at default thresholds.
    Nothing here makes reference cycles in bulk, so collecting less often keeps memory flat."""
    gc.freeze()  # what start-up loaded (faust, confluent-kafka, ...) is never collected again
    gc.set_threshold(100_000, 50, 100)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic collector off while one batch is worked, and one young collection after it.

    A batch's objects (decoded events, resolved pairs, output records) live until the batch is
    done, so each young collection during it visited all of those allocated since the one before:
    nine collections of 36 ms per 100,000 events in the journey's work offline, 0.3-0.6 s of the
    journey's 2.5-3 s of CPU end to end. After the batch they are freed by reference counting, and
    the young collection then visits only what the batch left alive (new sessions' lists, held
    updates): one of 25 ms per 20,000 events. Cycles made meanwhile wait for that collection.
    Not reentrant: the journey holds its state lock around it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
            gc.collect(0)


def run_faust_worker(settings: Settings) -> None:
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    # At log levels WARNING and above faust keeps a terminal spinner that turns on every log record,
    # and sets the root logger to DEBUG to feed it: each send then built a debug record (3 % of the
    # journey's time). A worker is a service, not a terminal: no spinner, the level as configured.
    worker.spinner = None
    worker.execute_from_commandline()
