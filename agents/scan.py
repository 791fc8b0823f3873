"""The aggregate trigger rules in the worker, and publishing a scan's decisions (also for the CLI).

    report = run_scan(settings, now_ms)        # sinks/trigger_scan.py: ClickHouse -> RuleOutput
    publish(settings, report.output)          # triggers -> o2o.triggers.<rule>, decisions -> o2o.trigger-log

`publish` sends what the journey agent sends for its own firings (agents/journey_records.py):
each trigger on its rule's topic, keyed and partitioned like the journey's (`trigger_key`,
`partition_for`), and every decision on the decision log, which the sink stores in triggers_log;
it waits for every acknowledgement.

In the worker (`register`, when the worker runs the journey agent and rules_scan_interval_s > 0) a
faust timer ticks every rules_scan_interval_s; only the worker that owns the journey partition acts,
so one scan runs per deployment. A rule runs when it is due: every `every_min` / `every_h` of its
own (kept in memory: after a restart every rule runs at the first tick), or earlier when firings
were held over quiet hours, at the window opening. The ClickHouse queries and the publishing run in
an executor thread (both clients block). Trigger ids it published are remembered for a day, so a
scan does not publish again what the sink has not stored in triggers_log yet.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from prometheus_client import Counter

from agents.journey_records import by_partition, trigger_decisions, trigger_key
from pipeline.config import Settings
from pipeline.rules import RuleOutput
from pipeline.topics import ACCEPTED, TRIGGER_LOG, partition_for

log = logging.getLogger(__name__)
SCANS = Counter("o2o_trigger_scans_total", "Aggregate rule evaluations by the worker's scan", ["rule", "outcome"])
REMEMBER_MS = 24 * 3_600_000  # how long the worker remembers the trigger ids it published


def now_ms() -> int:
    return int(time.time() * 1000)


class PublishError(Exception):
    """Kafka did not acknowledge everything; the message says what to check."""


def publish(settings: Settings, out: RuleOutput, producer: Any = None, published_at: int | None = None,
            codec: Any = None, timeout_s: float = 30.0) -> int:
    """Triggers to their rule topics and every decision to the decision log; waits for the acks.
    Returns the number of records sent."""
    from confluent_kafka import KafkaException, Producer

    from pipeline.serde import EventCodec, registry_from_settings

    if not out.triggers and not out.suppressed:
        return 0
    published_at = now_ms() if published_at is None else published_at
    codec = codec or EventCodec(registry_from_settings(settings))
    own = producer is None
    if own:
        producer = Producer({**settings.kafka_client_config(), "enable.idempotence": True, "linger.ms": 5})
    n = settings.topic_partitions
    errors: list[str] = []
    sent = 0

    def on_delivery(err: Any, _message: Any) -> None:
        if err is not None:
            errors.append(str(err))

    def send(topic: str, value: bytes, partition: int) -> None:
        nonlocal sent
        while True:
            try:
                producer.produce(topic, value=value, partition=partition, on_delivery=on_delivery)
                sent += 1
                return
            except BufferError:
                producer.poll(0.05)

    try:
        for trigger in out.triggers:
            send(settings.topic(f"triggers.{trigger.rule}"),
                 codec.encode_output("trigger", trigger.to_record(published_at)),
                 partition_for(trigger_key(trigger), n))
        for partition, chunk in by_partition(trigger_decisions(out, published_at), "person_id", n,
                                             settings.output_batch_events):
            send(settings.topic(TRIGGER_LOG), codec.encode_outputs("trigger_decision", chunk), partition)
        remaining = producer.flush(timeout_s)
    except KafkaException as exc:
        raise PublishError(f"cannot publish to Kafka at {settings.kafka_bootstrap_servers}: {exc}; "
                           "is the broker up and `o2o init` done?") from None
    if remaining or errors:
        what = errors[0] if errors else f"{remaining} records unacknowledged after {timeout_s:.0f} s"
        raise PublishError(f"publishing the scan's triggers to {settings.kafka_bootstrap_servers} failed: {what}; "
                           "is the broker up and `o2o init` done (the topics o2o.triggers.<rule> and "
                           "o2o.trigger-log)?")
    return sent


class Scanner:
    """The worker's scan schedule and memory; `tick` is blocking (run it in an executor thread)."""

    def __init__(self, settings: Settings) -> None:
        from pipeline.rules import RuleEngine
        from sinks.trigger_scan import aggregate_rules

        self.settings = settings
        self.rules_config = settings.rules()
        compiled = RuleEngine(self.rules_config, settings.journey_policy()).rules
        self.every = {spec.name: compiled[spec.name].every_ms for spec in aggregate_rules(self.rules_config)}
        self.next_due: dict[str, int] = {name: 0 for name in self.every}
        self.published: dict[str, int] = {}  # trigger id -> when (wall ms)
        self._client: Any = None
        self._producer: Any = None
        self._lock = threading.Lock()

    def due(self, now: int) -> list[str]:
        return [name for name, at in self.next_due.items() if at <= now]

    def tick(self, now: int | None = None) -> Any:
        """Run the due rules at `now` (wall clock) and publish; the ScanReport, or None if none was due."""
        from sinks.trigger_scan import connect, evaluate_on

        now = now_ms() if now is None else now
        with self._lock:
            names = self.due(now)
            if not names:
                return None
            if self._client is None:
                self._client = connect(self.settings)
            if self._producer is None:
                from confluent_kafka import Producer

                self._producer = Producer({**self.settings.kafka_client_config(), "enable.idempotence": True,
                                           "linger.ms": 5})
            self._forget(now)
            try:
                report = evaluate_on(self._client, self.settings, self.rules_config, now, names, self.published)
                publish(self.settings, report.output, self._producer, now_ms())
            except Exception:
                for name in names:
                    SCANS.labels(name, "failed").inc()
                self._client.disconnect()  # a fresh connection at the next tick
                self._client = None
                raise
            for name in names:
                SCANS.labels(name, "ok").inc()
            for trigger in report.output.triggers:
                self.published[trigger.trigger_id] = now
            for name in names:
                self.next_due[name] = now + self.every[name]
            for held in report.output.held:  # decided again at the window opening
                rule = held.trigger.rule
                self.next_due[rule] = min(self.next_due[rule], held.release_at)
            return report

    def _forget(self, now: int) -> None:
        old = [tid for tid, at in self.published.items() if at < now - REMEMBER_MS]
        for tid in old:
            del self.published[tid]

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
        if self._producer is not None:
            self._producer.flush(10)


def register(app: Any, settings: Settings) -> None:
    """The scan timer of a worker that runs the journey agent (agents/app.py)."""
    if not settings.rules_scan_interval_s:
        return
    from agents import metrics
    from sinks.trigger_scan import ScanError

    accepted = settings.topic(ACCEPTED)
    scanner = Scanner(settings)
    if not scanner.every:
        return
    busy: set[asyncio.Future] = set()  # the scan under way, if any (a tick never waits for it)

    def owns_journey() -> bool:
        try:
            return any(tp.topic == accepted for tp in app.consumer.assignment())
        except Exception:  # the consumer is not up yet
            return False

    async def scan_once() -> None:
        try:
            report = await asyncio.get_running_loop().run_in_executor(None, scanner.tick)
        except (ScanError, PublishError) as exc:
            log.warning("trigger scan failed, retrying at the next tick: %s", exc)
            return
        except Exception:  # never take the worker down for a scan; the next tick retries
            log.exception("trigger scan failed, retrying at the next tick")
            return
        if report is not None:
            metrics.record_rules(report.output)
            out = report.output
            if out.triggers or out.suppressed or out.held:
                log.info("trigger scan of %s: %d fired, %d suppressed, %d held, %d already published",
                         ", ".join(report.rules), len(out.triggers), len(out.suppressed), len(out.held),
                         sum(len(v) for v in report.already_published.values()))

    @app.timer(interval=float(settings.rules_scan_interval_s), name="o2o-trigger-scan")
    async def trigger_scan() -> None:
        # The scan runs beside the timer, so a slow one neither delays the ticks nor overlaps itself.
        if busy or not owns_journey():
            return
        task = asyncio.ensure_future(scan_once())
        busy.add(task)
        task.add_done_callback(busy.discard)
