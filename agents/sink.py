"""The ClickHouse sink: pipeline outputs -> ClickHouse, in columnar batches of thousands of rows.

    o2o.resolved     -> events        (each accepted event with its person and lateness)
    o2o.sessions     -> sessions      (every version; the table keeps the latest)
    o2o.visits       -> store_visits
    o2o.trigger-log  -> triggers_log  (every trigger decision, fired or suppressed)
    o2o.identity     -> identity_links (merges, applied in order by one writer: one partition)

One consumer per topic, in the consumer group `<prefix>-sink-<table>`, each in a thread of the
worker (`o2o worker --agents sink` runs sink-only workers; more of them share the partitions).
Per batch (`sink_batch_records` Kafka records, `sink_batch_bytes` of them, or `sink_batch_wait_ms`
after the first one, whichever comes first, and right after a full batch as soon as every partition
is read to its end: sinks/batching.py; a record carries up to `output_batch_events` rows) it
decodes, builds the rows and inserts them in one block (sinks/writer.py): `events` as JSONEachRow
over ClickHouse's HTTP interface (sinks/http.py: the widest table, and the most rows, cost half as
much that way), the others through clickhouse-driver. The byte bound keeps a sink working off a
backlog inserting as soon as a batch is worth it, not once per wait.

ClickHouse down or failing: the insert is retried with a doubling backoff (`sink_retry_min_ms` to
`sink_retry_max_ms`) until it succeeds; meanwhile the consumer's partitions are paused, so nothing
more is fetched (backpressure), while polling keeps it in its group. Offsets are committed only
after the rows they carry are stored. A crash therefore re-reads at most the batches whose rows
were not confirmed stored; an insert retried after a timeout may have landed twice, which the
tables absorb (ReplacingMergeTree keyed by event, trigger, session or visit id; sinks/tables.py),
so no query result changes.

Why not faust agents: faust waits for every event in flight to be acknowledged before it lets a
rebalance finish, so a sink waiting out a ClickHouse outage would stall the worker's rebalances,
journey and triggers included; and faust costs ~100 us per record (DESIGN.md), confluent-kafka a
few.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any, Callable

from clickhouse_driver import Client
from confluent_kafka import Consumer, KafkaError, TopicPartition

from agents import metrics
from agents.app import group_consumer
from pipeline.config import Settings
from pipeline.serde import EventCodec, registry_from_settings
from pipeline.topics import IDENTITY, RESOLVED, SESSIONS, TRIGGER_LOG, VISITS
from sinks.batching import CatchUp
from sinks.http import ClickHouseHTTP
from sinks.tables import insert_columns
from sinks.writer import JsonRows, apply_person_merges, event_json_rows, insert

log = logging.getLogger(__name__)

Rows = list[dict[str, Any]] | JsonRows  # records for clickhouse-driver, or `events` rows as JSON


class Stopping(Exception):
    """The worker stops while an insert is being retried: leave the batch uncommitted."""


class TableSink(threading.Thread):
    """One topic into one table: consume a batch, store it (retrying), commit, repeat."""

    def __init__(self, settings: Settings, topic: str, table: str, rows_of: Callable[[list[bytes]], Rows],
                 store: Callable[[Client, Rows], Any], stop: threading.Event) -> None:
        super().__init__(name=f"sink-{table}", daemon=True)
        self.settings, self.topic, self.table = settings, topic, table
        self.rows_of, self.store, self.stop = rows_of, store, stop

    def run(self) -> None:
        try:
            self.consume_and_store()
        except Stopping:
            pass
        except Exception:  # a bug, not an outage: take the worker down; its batch was not committed
            log.exception("sink %s crashed; stopping the worker", self.table)
            os.kill(os.getpid(), signal.SIGTERM)

    def consume_and_store(self) -> None:
        settings = self.settings
        consumer = group_consumer(settings, f"{settings.topic_prefix}-sink-{self.table}", settings.sink_fetch_max_wait_ms,
                                  partition_eof=True)
        client = Client(**settings.clickhouse_client_kwargs(), connect_timeout=3, send_receive_timeout=60)
        consumer.subscribe([self.topic])
        catch_up = CatchUp()
        try:
            while not self.stop.is_set():
                batch = self.take(consumer, catch_up)
                if batch:
                    self.store_batch(consumer, client, batch)
        finally:
            consumer.close()
            client.disconnect()

    def take(self, consumer: Consumer, catch_up: CatchUp) -> list:
        """Up to sink_batch_records messages or sink_batch_bytes of them, waiting at most
        sink_batch_wait_ms after the first; right after a full batch, only until every assigned
        partition is read to its end (sinks/batching.py)."""
        settings = self.settings
        batch: list = []
        size = 0
        deadline = None
        closed_by = "wait"  # unless full or caught up
        while len(batch) < settings.sink_batch_records and size < settings.sink_batch_bytes and not self.stop.is_set():
            wait = 0.5 if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                break
            message = consumer.poll(wait)  # one at a time, so a batch stops at sink_batch_bytes
            if message is None:
                continue
            error = message.error()
            if error is None:
                batch.append(message)
                size += len(message.value() or b"")
                catch_up.received(message.partition())
            elif error.code() == KafkaError._PARTITION_EOF:
                assigned = [tp.partition for tp in consumer.assignment()]
                if catch_up.reached_end(message.partition(), assigned) and batch:
                    closed_by = "caught_up"
                    break
            else:
                log.warning("sink %s: consumer error %s", self.table, error)
            if batch and deadline is None:
                deadline = time.monotonic() + settings.sink_batch_wait_ms / 1000
        if batch:
            full = len(batch) >= settings.sink_batch_records or size >= settings.sink_batch_bytes
            catch_up.batch_closed(full)
            metrics.SINK_BATCHES.labels(self.table, "full" if full else closed_by).inc()
        return batch

    def store_batch(self, consumer: Consumer, client: Client, batch: list) -> None:
        rows = self.rows_of([message.value() for message in batch])
        started = time.perf_counter()
        self.store_with_retry(consumer, client, rows)
        stored_s = time.time()
        metrics.SINK_INSERT_SECONDS.labels(self.table).observe(time.perf_counter() - started)
        metrics.SINK_ROWS.labels(self.table).inc(len(rows))
        for message in batch:
            metrics.SINK_FRESHNESS.labels(self.table).observe(max(0.0, stored_s - message.timestamp()[1] / 1000))
        last: dict[int, int] = {}
        for message in batch:
            last[message.partition()] = max(last.get(message.partition(), -1), message.offset())
        try:
            consumer.commit(offsets=[TopicPartition(self.topic, p, o + 1) for p, o in last.items()],
                            asynchronous=False)
        except Exception as exc:  # partitions moved to another sink meanwhile: it stores them again
            log.warning("sink %s: commit failed (%s); the new owner re-reads those rows", self.table, exc)

    def store_with_retry(self, consumer: Consumer, client: Client, rows: Rows) -> None:
        delay_ms = self.settings.sink_retry_min_ms
        while True:
            try:
                self.store(client, rows)
            except Exception as exc:  # server down, restarting, overloaded: all mean "try again later"
                metrics.SINK_ERRORS.labels(self.table, type(exc).__name__).inc()
                metrics.SINK_BACKLOGGED.labels(self.table).set(1)
                first_line = (str(exc).splitlines() or [""])[0][:200]
                log.warning("sink %s: insert failed (%s: %s); retrying in %d ms", self.table,
                            type(exc).__name__, first_line, delay_ms)
                client.disconnect()
                consumer.pause(consumer.assignment())
                self.wait(consumer, delay_ms / 1000)
                delay_ms = min(delay_ms * 2, self.settings.sink_retry_max_ms)
                continue
            if delay_ms != self.settings.sink_retry_min_ms:
                consumer.resume(consumer.assignment())
                metrics.SINK_BACKLOGGED.labels(self.table).set(0)
            return

    def wait(self, consumer: Consumer, seconds: float) -> None:
        """Sleep while staying in the group: poll the paused consumer (it returns nothing)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.stop.is_set():
                raise Stopping
            consumer.poll(min(left, 0.5))


def start_sinks(settings: Settings, stop: threading.Event) -> list[TableSink]:
    """Start one sink thread per output topic; they run until `stop` is set."""
    codec = EventCodec(registry_from_settings(settings))

    def outputs(values: list[bytes]) -> Rows:
        return [record for value in values for record in codec.decode_outputs(value)[1]]

    def events(values: list[bytes]) -> JsonRows:
        return event_json_rows(codec, outputs(values), int(time.time() * 1000))

    def events_over_http() -> Callable[[Client, JsonRows], None]:
        http = ClickHouseHTTP(settings)  # used by the events thread alone
        columns = insert_columns("events")

        def store(_client: Client, rows: JsonRows) -> None:
            if rows.count:
                http.insert_json_each_row("events", columns, rows.body)
        return store

    def into(table: str) -> Callable[[Client, Rows], int]:
        return lambda client, rows: insert(client, table, rows)

    sinks = [
        TableSink(settings, settings.topic(RESOLVED), "events", events, events_over_http(), stop),
        TableSink(settings, settings.topic(SESSIONS), "sessions", outputs, into("sessions"), stop),
        TableSink(settings, settings.topic(VISITS), "store_visits", outputs, into("store_visits"), stop),
        TableSink(settings, settings.topic(TRIGGER_LOG), "triggers_log", outputs, into("triggers_log"), stop),
        TableSink(settings, settings.topic(IDENTITY), "identity_links", outputs, apply_person_merges, stop),
    ]
    for sink in sinks:
        sink.start()
    return sinks
