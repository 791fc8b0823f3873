"""The topic catalogue and the partitioner every producer of events shares.

Ingress topics (one per event type) and the accepted-events topic are partitioned by the event's
routing key (`pipeline.ingest.routing_key`: its strongest identifier) with `partition_for`, a stable
hash that is the same in every process. So a re-sent event always lands on the partition where its
first copy went, which is what makes per-partition deduplication exact, and one person's events
meet in one partition downstream.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from pipeline.config import Settings
from pipeline.events import EVENT_TYPES

DLQ = "dlq"
ACCEPTED = "accepted"
SESSIONS = "sessions"
VISITS = "visits"
IDENTITY = "identity"
RESOLVED = "resolved"
TRIGGER_LOG = "trigger-log"
INGEST_DEDUP_CHANGELOG = "state.ingest-dedup"
JOURNEY_CHANGELOG = "state.journey"
# Identity linking is global (any two identifiers may meet in one event), so the journey stage is a
# single writer: its input has one partition (README, "Identity and sessions").
JOURNEY_PARTITIONS = 1


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int
    purpose: str


def partition_for(key: str, partitions: int) -> int:
    """Stable across processes and runs (unlike Python's hash())."""
    return zlib.crc32(key.encode()) % partitions


def ingress_topics(settings: Settings) -> dict[str, str]:
    """event type -> its ingress topic."""
    return {event_type: settings.topic(event_type) for event_type in EVENT_TYPES}


def trigger_topics(settings: Settings) -> dict[str, str]:
    """rule name -> its trigger topic (`<prefix>.triggers.<rule>`), for the enabled rules."""
    return {rule.name: settings.topic(f"triggers.{rule.name}") for rule in settings.rules().enabled()}


def catalogue(settings: Settings) -> list[TopicSpec]:
    n, retention = settings.topic_partitions, settings.topic_retention_ms
    specs = [TopicSpec(topic, n, retention, f"ingress: {t} events") for t, topic in ingress_topics(settings).items()]
    specs += [
        TopicSpec(settings.topic(DLQ), n, retention, "rejected input with reason codes and replayable bytes"),
        TopicSpec(settings.topic(ACCEPTED), JOURNEY_PARTITIONS, retention,
                  "validated, hashed, deduplicated events: the journey stage's input"),
        TopicSpec(settings.topic(SESSIONS), n, retention, "session updates (open, closed, absorbed) by person"),
        TopicSpec(settings.topic(VISITS), n, retention, "store visit updates by person"),
        # One partition: merges are applied in order by one writer (the sink keeps their closure).
        TopicSpec(settings.topic(IDENTITY), JOURNEY_PARTITIONS, retention,
                  "person merges: re-point the absorbed person's history"),
        TopicSpec(settings.topic(RESOLVED), n, retention,
                  "accepted records with the person and lateness of each event: the sink's events"),
        TopicSpec(settings.topic(TRIGGER_LOG), n, retention, "every trigger decision, fired or suppressed"),
        # Restores read from the last whole-state snapshot, written at least every 12 h.
        TopicSpec(settings.topic(JOURNEY_CHANGELOG), JOURNEY_PARTITIONS, max(retention, 86_400_000),
                  "journey agent state: identities, open sessions and visits"),
        # Changelog partition p holds the state of partition p of every ingress topic. Only ids within
        # the dedup window matter, so a restore reads hours, not the topics' retention, of them.
        TopicSpec(settings.topic(INGEST_DEDUP_CHANGELOG), n, max(3 * settings.dedup_window_ms, 3_600_000),
                  "ingest agent state: event ids seen, per ingress partition"),
    ]
    specs += [TopicSpec(topic, n, retention, f"triggers of rule {rule}, keyed by person")
              for rule, topic in trigger_topics(settings).items()]
    return specs
