"""Consumer lag per consumer group and topic, as the gauge `o2o_consumer_lag{group,topic}`.

lag = high watermark - committed offset, summed over the topic's partitions (a partition without a
committed offset counts from its start). A background thread of the worker recomputes it every
`interval_s` seconds for the groups of the agents that worker runs:

    ingest   <prefix>-pipeline        on the ingress topics (faust's group: the app id)
    journey  <prefix>-pipeline        on <prefix>.accepted
    sink     <prefix>-sink-<table>    on resolved, sessions, visits, trigger-log, identity

Committed offsets come from an OffsetFetch (`AdminClient.list_consumer_group_offsets`). High
watermarks come from Fetch responses, NOT from ListOffsets (`get_watermark_offsets` without the
cache, `end_offsets()`): the local broker, Tansu 0.6.0, answers ListOffsets(latest) with the base
offset of the last record batch + 1, which under-reports whenever that batch holds several records
(DESIGN.md). So a *tail* consumer of its own (assign() only, it never joins a group) follows every
watched partition from its end and throws the records away; librdkafka keeps the high watermark of
each Fetch response, which `get_watermark_offsets(cached=True)` returns. Right on Tansu and on
Apache Kafka alike. The tail costs one extra read of the watched topics' new records; records
carry many events (DESIGN.md), so that is a few records per second per partition.

Several workers running the same agents report the same groups: aggregate with `max`, not `sum`.
The monitor only observes; a failure is logged and retried, it never stops the worker.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from confluent_kafka import OFFSET_END, Consumer, ConsumerGroupTopicPartitions, TopicPartition
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


def watched_groups(settings: Settings, agents: set[str]) -> dict[str, list[str]]:
    """{consumer group: its topics} for the agents a worker runs."""
    groups: dict[str, list[str]] = {}
    if "ingest" in agents:
        groups.setdefault(pipeline_group(settings), []).extend(ingress_topics(settings).values())
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
        tail = Consumer({
            **config,
            "group.id": f"{self.settings.topic_prefix}-lag-{uuid.uuid4().hex[:8]}",  # never joined: assign() only
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 250,                # an empty Fetch answer still carries the high watermark
            "queued.max.messages.kbytes": 4096,      # the records are thrown away: keep little of them
        })
        try:
            next_report = 0.0
            while not self.stop.is_set():
                tail.consume(num_messages=10_000, timeout=0.25)  # keeps Fetch answers (watermarks) coming
                now = time.monotonic()
                if now < next_report:
                    continue
                next_report = now + self.interval_s
                try:
                    self.follow_new_partitions(tail)
                    self.report(admin, tail)
                except Exception as exc:  # broker restarting, topic not created yet: try again next round
                    log.debug("consumer lag not updated: %s", exc)
        except Exception:
            log.exception("the consumer-lag monitor stopped; o2o_consumer_lag is no longer updated")
        finally:
            tail.close()

    def follow_new_partitions(self, tail: Consumer) -> None:
        wanted = {topic for topics in self.groups.values() for topic in topics}
        if all(topic in self.partitions for topic in wanted):
            return
        metadata = tail.list_topics(timeout=5).topics  # all topics: naming one may auto-create it
        new = []
        for topic in sorted(wanted - set(self.partitions)):
            if topic in metadata and metadata[topic].error is None:
                self.partitions[topic] = sorted(metadata[topic].partitions)
                new += [TopicPartition(topic, p, OFFSET_END) for p in self.partitions[topic]]
        if new:
            tail.incremental_assign(new)

    def report(self, admin: AdminClient, tail: Consumer) -> None:
        for group, topics in self.groups.items():
            tps = [TopicPartition(t, p) for t in topics if t in self.partitions for p in self.partitions[t]]
            if not tps:
                continue
            future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)])[group]
            committed = {(tp.topic, tp.partition): tp.offset for tp in future.result(timeout=5).topic_partitions}
            lags: dict[str, int] = {}
            unknown: set[str] = set()
            for tp in tps:
                low, high = tail.get_watermark_offsets(tp, cached=True)
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
