"""Consumer lag per consumer group and topic, as the gauge `o2o_consumer_lag{group,topic}`.

lag = high watermark - committed offset, summed over the topic's partitions (a partition without a
committed offset counts from its start). A background thread of the worker recomputes it every
`interval_s` seconds for the groups of the agents that worker runs:

    ingest   <prefix>-ingest          on the ingress topics
    journey  <prefix>-pipeline        on <prefix>.accepted (faust's group: the app id)
    sink     <prefix>-sink-<table>    on resolved, sessions, visits, trigger-log, identity

Committed offsets come from an OffsetFetch (`AdminClient.list_consumer_group_offsets`). High
watermarks come from Fetch responses, NOT from ListOffsets (`get_watermark_offsets` without the
cache, `end_offsets()`): the local broker, Tansu 0.6.0, answers ListOffsets(latest) with the base
offset of the last record batch + 1, which under-reports whenever that batch holds several records
(DESIGN.md). So each round a *probe* consumer of its own (assign() only, it never joins a group)
starts every watched partition at its end and waits for end-of-partition: on Tansu that Fetch
returns at most the last record batch, on Apache Kafka nothing, and librdkafka keeps each Fetch
response's high watermark, which `get_watermark_offsets(cached=True)` returns. Right on Tansu and
on Apache Kafka alike. The probe then lets go of the partitions until the next round: following
them between rounds would make the broker serve every record a second time.

Several workers running the same agents report the same groups: aggregate with `max`, not `sum`.
The monitor only observes; a failure is logged and retried, it never stops the worker.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from confluent_kafka import OFFSET_END, Consumer, ConsumerGroupTopicPartitions, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from agents import metrics
from pipeline.config import Settings
from pipeline.topics import ACCEPTED, IDENTITY, RESOLVED, SESSIONS, TRIGGER_LOG, VISITS, ingress_topics

log = logging.getLogger(__name__)

# The sink's consumer groups (agents/sink.py: group `<prefix>-sink-<table>` per topic).
SINK_TABLES = {RESOLVED: "events", SESSIONS: "sessions", VISITS: "store_visits", TRIGGER_LOG: "triggers_log",
               IDENTITY: "identity_links"}
UNKNOWN = -1001  # librdkafka's OFFSET_INVALID: no committed offset, or no Fetch answer yet


def pipeline_group(settings: Settings) -> str:
    """faust's consumer group: the app id (agents/app.py)."""
    return f"{settings.topic_prefix}-pipeline"


def ingest_group(settings: Settings) -> str:
    return f"{settings.topic_prefix}-ingest"


def watched_groups(settings: Settings, agents: set[str]) -> dict[str, list[str]]:
    """{consumer group: its topics} for the agents a worker runs."""
    groups: dict[str, list[str]] = {}
    if "ingest" in agents:
        groups[ingest_group(settings)] = list(ingress_topics(settings).values())
    if "journey" in agents:
        groups.setdefault(pipeline_group(settings), []).append(settings.topic(ACCEPTED))
    if "sink" in agents:
        for logical, table in SINK_TABLES.items():
            groups[f"{settings.topic_prefix}-sink-{table}"] = [settings.topic(logical)]
    return groups


class LagMonitor(threading.Thread):
    def __init__(self, settings: Settings, groups: dict[str, list[str]], stop: threading.Event,
                 interval_s: float = 2.0) -> None:
        super().__init__(name="consumer-lag", daemon=True)
        self.settings, self.groups, self.stop, self.interval_s = settings, groups, stop, interval_s
        self.partitions: dict[str, list[int]] = {}  # topic -> partitions being followed

    def run(self) -> None:
        config = self.settings.kafka_client_config()
        admin = AdminClient({**config, "log_level": 0})
        probe = Consumer({
            **config,
            "group.id": f"{self.settings.topic_prefix}-lag-{uuid.uuid4().hex[:8]}",  # never joined: assign() only
            "enable.auto.commit": False,
            "enable.partition.eof": True,            # tells when a partition's Fetch answer has come
            "fetch.wait.max.ms": 100,
        })
        try:
            while not self.stop.wait(self.interval_s):
                try:
                    self.follow_new_partitions(probe)
                    self.report(admin, self.watermarks(probe))
                except Exception as exc:  # broker restarting, topic not created yet: try again next round
                    log.debug("consumer lag not updated: %s", exc)
        except Exception:
            log.exception("the consumer-lag monitor stopped; o2o_consumer_lag is no longer updated")
        finally:
            probe.close()

    def follow_new_partitions(self, probe: Consumer) -> None:
        wanted = {topic for topics in self.groups.values() for topic in topics}
        if all(topic in self.partitions for topic in wanted):
            return
        metadata = probe.list_topics(timeout=5).topics  # all topics: naming one may auto-create it
        for topic in sorted(wanted - set(self.partitions)):
            if topic in metadata and metadata[topic].error is None:
                self.partitions[topic] = sorted(metadata[topic].partitions)

    def watermarks(self, probe: Consumer, timeout_s: float = 5.0) -> dict[tuple[str, int], tuple[int, int]]:
        """{(topic, partition): (low, high) watermarks} from one Fetch answer per watched partition."""
        tps = [TopicPartition(t, p, OFFSET_END) for t, partitions in self.partitions.items() for p in partitions]
        waiting = {(tp.topic, tp.partition) for tp in tps}
        probe.assign(tps)
        try:
            deadline = time.monotonic() + timeout_s
            while waiting and time.monotonic() < deadline and not self.stop.is_set():
                for message in probe.consume(num_messages=10_000, timeout=0.2):
                    error = message.error()
                    if error is not None and error.code() == KafkaError._PARTITION_EOF:
                        waiting.discard((message.topic(), message.partition()))
            return {(tp.topic, tp.partition): probe.get_watermark_offsets(tp, cached=True)
                    for tp in tps if (tp.topic, tp.partition) not in waiting}
        finally:
            probe.unassign()

    def report(self, admin: AdminClient, watermarks: dict[tuple[str, int], tuple[int, int]]) -> None:
        for group, topics in self.groups.items():
            tps = [TopicPartition(t, p) for t in topics if t in self.partitions for p in self.partitions[t]]
            if not tps:
                continue
            future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)])[group]
            committed = {(tp.topic, tp.partition): tp.offset for tp in future.result(timeout=5).topic_partitions}
            lags: dict[str, int] = {}
            unknown: set[str] = set()
            for tp in tps:
                low, high = watermarks.get((tp.topic, tp.partition), (UNKNOWN, UNKNOWN))
                if high == UNKNOWN:  # no Fetch answer for this partition yet: report the topic later
                    unknown.add(tp.topic)
                    continue
                start = committed.get((tp.topic, tp.partition), UNKNOWN)
                if start < 0:
                    start = max(low, 0)
                lags[tp.topic] = lags.get(tp.topic, 0) + max(0, high - start)
            for topic, lag in lags.items():
                if topic not in unknown:
                    metrics.CONSUMER_LAG.labels(group, topic).set(lag)
