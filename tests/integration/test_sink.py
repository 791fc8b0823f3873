"""The ClickHouse sink in the running worker: every output lands once, and an outage loses nothing."""

from __future__ import annotations

import time

import pytest
from clickhouse_driver import Client

from pipeline.stack import ClickHouse
from tests.conftest import wait_for
from tests.integration.test_journey_agent import base, journeys, send

MINUTE = 60_000
DAY = 24 * 60 * MINUTE
NOTHING_LATE = {"O2O_ALLOWED_LATENESS_MS": str(DAY)}


def scalar(settings, sql: str):
    client = Client(**settings.clickhouse_client_kwargs())
    try:
        return client.execute(sql)[0][0]
    except Exception:  # server down (the outage test): no answer yet
        return None
    finally:
        client.disconnect()


def test_events_sessions_visits_merges_and_trigger_decisions_land_in_clickhouse(pipeline_settings, start_worker):
    t0 = (int(time.time() * 1000) // DAY - 1) * DAY + 3 * 60 * MINUTE  # yesterday 11:00 in Shanghai
    events = [
        base("b1", "browse", t0, "app", device_id="d-1", page="product", sku="sku-1"),
        base("w1", "wifi_checkin", t0 + MINUTE, "wifi", wifi_mac_hash="e" * 64, kind="associate", store_id="s-1",
             rssi=-40),
        base("w2", "wifi_checkin", t0 + 10 * MINUTE, "wifi", wifi_mac_hash="e" * 64, kind="associate",
             store_id="s-1", rssi=-42),
        # The member logs in on the device with the phone on the store Wi-Fi: all three are one person.
        base("l1", "wifi_checkin", t0 + 21 * MINUTE, "wifi", member_id="42", device_id="d-1",
             wifi_mac_hash="e" * 64, kind="portal_login", store_id="s-1", rssi=-41),
        base("p1", "purchase", t0 + 25 * MINUTE, "pos", member_id="42", order_id="o-1", status="paid",
             amount_cents=9_900, currency="CNY", store_id="s-1"),
    ]
    worker = start_worker(**NOTHING_LATE)
    send(pipeline_settings, events)

    wait_for(lambda: scalar(pipeline_settings, "SELECT count() FROM events FINAL") == 5, 90, "every event stored")
    # Every event counts under the member, through person_map (README "Querying by person"), once the
    # merges are stored: each table has its own sink, so events may land before the merges do.
    persons_of_events = """
        SELECT groupUniqArray(if(m.merged_into = '', e.person_id, m.merged_into))
        FROM (SELECT event_id, person_id FROM events FINAL) AS e
        ANY LEFT JOIN (SELECT person_id, merged_into FROM person_map) AS m USING person_id"""
    wait_for(lambda: scalar(pipeline_settings, persons_of_events) == ["m:42"], 60, "every event under the member")
    assert scalar(pipeline_settings, "SELECT count() FROM identity_links") >= 1
    wait_for(lambda: scalar(pipeline_settings, "SELECT count() FROM sessions FINAL WHERE state != 'absorbed'") == 1,
             60, "the session stored")
    wait_for(lambda: scalar(pipeline_settings, "SELECT count() FROM store_visits FINAL") == 1, 60, "the visit stored")
    wait_for(lambda: (scalar(pipeline_settings,
                             "SELECT count() FROM triggers_log FINAL WHERE outcome = 'fired'") or 0) >= 1,
             60, "the trigger decisions stored")
    assert scalar(pipeline_settings, "SELECT sum(amount_cents) FROM events FINAL WHERE status = 'paid'") == 9_900
    assert worker.total("o2o_sink_rows_total") >= 5
    assert worker.total("o2o_sink_freshness_seconds_count") >= 1


@pytest.mark.timeout(300)
def test_clickhouse_down_for_30_s_mid_stream_loses_and_doubles_nothing(pipeline_settings, stack, start_worker):
    events = journeys(6_000, persons=200, seed=3)
    worker = start_worker(**NOTHING_LATE)
    send(pipeline_settings, events[:3_000])
    wait_for(lambda: (scalar(pipeline_settings, "SELECT count() FROM events") or 0) > 0, 90, "rows arriving")

    server = ClickHouse(stack)
    server.stop()
    try:
        send(pipeline_settings, events[3_000:])
        wait_for(lambda: worker.total("o2o_sink_insert_errors_total") > 0, 60, "the sink seeing the outage")
        time.sleep(30)  # the outage itself: the point of the test is its length, nothing to await
        assert worker.total("o2o_journey_events_total") == len(events), "the journey must go on meanwhile"
    finally:
        server.start()

    wait_for(lambda: scalar(pipeline_settings, "SELECT count() FROM events FINAL") == len(events), 120,
             "every event stored after the outage", interval_s=1)
    assert scalar(pipeline_settings, "SELECT uniqExact(event_id) FROM events") == len(events)
    assert scalar(pipeline_settings, "SELECT count() FROM events FINAL") == len(events)


def test_the_tail_of_a_backlog_is_inserted_once_read_not_after_the_batch_wait(pipeline_settings, start_worker):
    """Batches of 2 records, a 10-minute wait: 5 records make two full batches and one of 1 record,
    which goes in as soon as the sink has read everything (sinks/batching.py), not 10 minutes later."""
    from confluent_kafka import Producer

    from agents.journey_records import absorbed_session
    from pipeline.serde import EventCodec
    from pipeline.topics import SESSIONS

    codec = EventCodec()
    producer = Producer(pipeline_settings.kafka_client_config())
    for i in range(5):
        record = absorbed_session(f"tail-{i}", "into", "m:tail", emitted_at=1_700_000_000_000)
        producer.produce(pipeline_settings.topic(SESSIONS), codec.encode_outputs("session_update", [record]),
                         partition=0)
    assert producer.flush(30) == 0
    worker = start_worker(O2O_WORKER_AGENTS="sink", O2O_SINK_BATCH_RECORDS="2", O2O_SINK_BATCH_WAIT_MS="600000")
    wait_for(lambda: scalar(pipeline_settings, "SELECT count() FROM sessions WHERE session_id LIKE 'tail-%'") == 5,
             120, "all five records stored, the last one well before its batch wait of 10 minutes")
    batches = {closed_by: worker.metrics().get(f'o2o_sink_batches_total{{closed_by="{closed_by}",table="sessions"}}')
               for closed_by in ("full", "caught_up", "wait")}
    assert batches == {"full": 2.0, "caught_up": 1.0, "wait": None}, batches
