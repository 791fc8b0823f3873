"""Prometheus metrics of the workers. Observes; never part of the logic (agents call `record_*`)."""

from __future__ import annotations

import gc
import time
from collections import Counter as Tally

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter("o2o_events_in_total", "Events read by a stage", ["stage", "event_type"])
EVENTS_ACCEPTED = Counter("o2o_events_accepted_total", "Events accepted by ingest", ["event_type"])
DUPLICATES = Counter("o2o_duplicates_total", "Events dropped as duplicates of an earlier event_id", ["event_type"])
DEAD_LETTERS = Counter("o2o_dead_letters_total", "Rejected inputs sent to the dead-letter topic", ["reason"])
BATCH_RECORDS = Histogram("o2o_batch_records", "Kafka records per agent batch", ["stage"],
                          buckets=(1, 10, 50, 100, 250, 500, 1000, 5000))
STEP_SECONDS = Counter("o2o_step_seconds_total", "Time spent per agent step (where a batch's time goes)",
                       ["stage", "step"])
STATE_RESTORES = Counter("o2o_state_restored_records_total", "Changelog records replayed at start", ["stage"])
STATE_SNAPSHOTS = Counter("o2o_state_snapshots_total", "Whole-state changelog groups written", ["stage"])
GC_SECONDS = Counter("o2o_gc_seconds_total", "Time in Python's cyclic garbage collector, by generation",
                     ["generation"])


def observe_gc() -> None:
    """Time every collection of this process: workers collect rarely (agents/app.py, tune_gc), and
    this shows what the collections they still make cost, next to o2o_step_seconds_total."""
    started = time.perf_counter()

    def timed(phase: str, info: dict) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            GC_SECONDS.labels(str(info["generation"])).inc(time.perf_counter() - started)

    for generation in range(3):
        GC_SECONDS.labels(str(generation))  # shown as 0 until the first collection of that generation
    gc.callbacks.append(timed)


def record_ingest(result) -> None:
    """Count one batch's outcome (a pipeline.ingest.IngestResult)."""
    read: Tally = Tally(d.event_type or "unknown" for d in result.dead_letters)
    for event_type, count in Tally(e["event_type"] for e in result.accepted).items():
        EVENTS_ACCEPTED.labels(event_type).inc(count)
        read[event_type] += count
    for event_type, count in Tally(e["event_type"] for e in result.duplicates).items():
        DUPLICATES.labels(event_type).inc(count)
        read[event_type] += count
    for reason, count in Tally(d.reason for d in result.dead_letters).items():
        DEAD_LETTERS.labels(reason).inc(count)
    for event_type, count in read.items():
        EVENTS_IN.labels("ingest", event_type).inc(count)

JOURNEY_DUPLICATES = Counter("o2o_journey_duplicates_total",
                             "Accepted events the journey saw twice (re-sent after an upstream crash)")
JOURNEY_EVENTS = Counter("o2o_journey_events_total", "Events sessionised by the journey agent")
LATE_EVENTS = Counter("o2o_late_events_total", "Events older than the allowed lateness: stored, not sessionised")
PERSON_MERGES = Counter("o2o_person_merges_total", "Anonymous persons merged into another person")
IDENTITY_CONFLICTS = Counter("o2o_identity_conflicts_total", "Links refused because they would join two members")
SESSIONS_CLOSED = Counter("o2o_sessions_closed_total", "Sessions closed (final version published)")
VISITS_CLOSED = Counter("o2o_visits_closed_total", "Store visits closed", ["class"])


def record_journey(batch) -> None:
    """Count one journey batch (a pipeline.journey.JourneyBatch)."""
    JOURNEY_EVENTS.inc(batch.events)
    LATE_EVENTS.inc(len(batch.late))
    PERSON_MERGES.inc(len(batch.merges))
    IDENTITY_CONFLICTS.inc(len(batch.conflicts))
    SESSIONS_CLOSED.inc(len(batch.sessions_closed))
    if batch.visits_closed:
        for visit_class, count in Tally(r["class"] for r in batch.records()["visits_closed"]).items():
            VISITS_CLOSED.labels(visit_class).inc(count)


# State sizes, set after each journey batch (agents/journey.py).
JOURNEY_PERSONS = Gauge("o2o_journey_persons", "Persons the journey's identity graph holds")
JOURNEY_OPEN_SESSIONS = Gauge("o2o_journey_open_sessions", "Sessions open in the journey agent")
JOURNEY_OPEN_VISITS = Gauge("o2o_journey_open_visits", "Store visits open in the journey agent")
RULES_PERSONS = Gauge("o2o_rules_persons", "Persons the trigger rule engine keeps state for")
RULES_PENDING_TIMERS = Gauge("o2o_rules_pending_timers", "Share invites and held firings waiting for their due time")


def record_state(processor, engine) -> None:
    """Set the state-size gauges from a JourneyProcessor and a RuleEngine (their dict sizes, O(1))."""
    JOURNEY_PERSONS.set(len(processor.identity._members))
    JOURNEY_OPEN_SESSIONS.set(len(processor.sessions._by_id))
    JOURNEY_OPEN_VISITS.set(len(processor.visits._by_id))
    sizes = engine.state_sizes()
    RULES_PERSONS.set(sizes["persons"])
    RULES_PENDING_TIMERS.set(sizes["pending_timers"])


TRIGGERS_PUBLISHED = Counter("o2o_triggers_published_total", "Triggers published on o2o.triggers.<rule>", ["rule"])
TRIGGERS_SUPPRESSED = Counter("o2o_triggers_suppressed_total", "Firings not published, by rule and reason",
                              ["rule", "reason"])
TRIGGERS_HELD = Counter("o2o_triggers_held_total", "Marketing firings held over quiet hours", ["rule"])
TRIGGER_LATENCY = Histogram(
    "o2o_trigger_latency_seconds",
    "From the causing event's ingress append to the trigger's acknowledged append", ["rule"],
    buckets=(0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0))


def record_rules(out) -> None:
    """Count one rule-engine output (a pipeline.rules.RuleOutput)."""
    for rule, count in Tally(t.rule for t in out.triggers).items():
        TRIGGERS_PUBLISHED.labels(rule).inc(count)
    for (rule, reason), count in Tally((s.trigger.rule, s.reason) for s in out.suppressed).items():
        TRIGGERS_SUPPRESSED.labels(rule, reason).inc(count)
    for rule, count in Tally(h.trigger.rule for h in out.held).items():
        TRIGGERS_HELD.labels(rule).inc(count)


SINK_ROWS = Counter("o2o_sink_rows_total", "Rows stored in ClickHouse", ["table"])
SINK_BATCHES = Counter("o2o_sink_batches_total", "Insert batches by what closed them: full, wait (sink_batch_wait_ms) "
                       "or caught_up (read to the end right after a full batch: sinks/batching.py)", ["table", "closed_by"])
SINK_ERRORS = Counter("o2o_sink_insert_errors_total", "Failed ClickHouse inserts (each is retried)", ["table", "error"])
SINK_INSERT_SECONDS = Histogram("o2o_sink_insert_seconds", "ClickHouse insert time per batch", ["table"],
                                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
SINK_BACKLOGGED = Gauge("o2o_sink_retrying", "1 while the sink retries a failed insert (backpressure on)", ["table"])
SINK_FRESHNESS = Histogram(
    "o2o_sink_freshness_seconds",
    "From a record's append to its rows being stored (events: from the ingress append)", ["table"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0))

CONSUMER_LAG = Gauge(
    "o2o_consumer_lag",
    "Records not yet consumed: high watermark (from Fetch responses) minus committed offset (agents/lag.py)",
    ["group", "topic"])
