"""The journey agent on the real broker (`o2o worker` processes): identity, sessions, restarts, rebalances.

Every test compares what the stream published on `o2o.sessions` with the pure core run over the
same accepted events: a restart or a rebalance must not change a single session. Sessions are
compared by content (person, times, events, aggregates); a session's id names its first event, which
depends on the order events were processed in, and the agent orders each batch by event time.
"""

from __future__ import annotations

import random
import time

import pytest

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from agents.admin import create_topics
from agents.changelog import SNAPSHOT_START, read_partitions, read_to_end
from pipeline.journey import JourneyProcessor
from pipeline.producer import EventProducer
from pipeline.serde import EventCodec
from pipeline.topics import ACCEPTED, IDENTITY, JOURNEY_CHANGELOG, SESSIONS
from tests.conftest import wait_for

MINUTE = 60_000
T0 = (int(time.time() * 1000) // MINUTE - 7 * 60) * MINUTE  # seven hours ago, on a minute
MAC_HASH = "a" * 64
DAY = 24 * 60 * MINUTE
NOTHING_LATE = {"O2O_ALLOWED_LATENESS_MS": str(DAY)}


def send(settings, events: list[dict]) -> None:
    with EventProducer(settings) as producer:
        rejections = producer.send_many(events)
    assert not rejections, rejections
    assert producer.stats.delivered == len(events), producer.stats


def published(settings, logical: str) -> list[dict]:
    codec = EventCodec()
    records = []
    for message in read_to_end(settings, settings.topic(logical)):
        records += codec.decode_outputs(message.value())[1]
    return records


def final_sessions(settings) -> list[dict]:
    """The last published version of every session that was not absorbed into another."""
    latest: dict[str, dict] = {}
    for update in sorted(published(settings, SESSIONS), key=lambda u: u["emitted_at"]):
        latest[update["session_id"]] = update
    return sorted_sessions(u for u in latest.values() if u["state"] != "absorbed")


def reference_sessions(settings, **overrides) -> list[dict]:
    """The pure core over all accepted events in event-time order, closed at the end."""
    settings = settings.model_copy(update=overrides)
    codec = EventCodec()
    events = [e for m in read_to_end(settings, settings.topic(ACCEPTED)) for e in codec.decode_accepted(m.value())]
    # Each event once: a crashed ingest may have re-sent some, and the journey drops repeats.
    events = list({e["event_id"]: e for e in reversed(events)}.values())
    events.sort(key=lambda e: e["occurred_at"])
    processor = JourneyProcessor(settings.journey_policy())
    latest: dict[str, dict] = {}
    for batch in (processor.process(events), processor.close_all()):
        for session in batch.sessions_updated + batch.sessions_closed:
            latest[session.session_id] = session.to_record()
        for absorbed, _ in batch.sessions_absorbed:
            latest.pop(absorbed, None)
    return sorted_sessions(latest.values())


def sorted_sessions(records) -> list[dict]:
    return sorted((comparable(r) for r in records), key=lambda s: (s["person_id"], s["start"], s["event_ids"]))


def comparable(record: dict) -> dict:
    keys = ("person_id", "start", "end", "event_count", "counts", "stores", "revenue_cents",
            "has_complaint", "has_share", "online_to_offline")
    return {**{k: record[k] for k in keys}, "event_ids": sorted(record["event_ids"])}


def sessionised_ids(settings) -> set[str]:
    return {e for s in final_sessions(settings) for e in s["event_ids"]}


def base(event_id: str, event_type: str, at: int, channel: str, **fields) -> dict:
    return {"event_id": event_id, "event_type": event_type, "occurred_at": at, "channel": channel, **fields}


def test_a_device_seen_in_app_and_shop_becomes_the_member_and_its_session_moves_with_it(
    pipeline_settings, start_worker
):
    events = [
        base("e1", "browse", T0, "app", device_id="d1", sku="sku-9"),
        base("e2", "wifi_checkin", T0 + 5 * MINUTE, "wifi", wifi_mac_hash=MAC_HASH, store_id="s1",
             kind="associate", rssi=-55),
        base("e3", "wifi_checkin", T0 + 6 * MINUTE, "wifi", wifi_mac_hash=MAC_HASH, member_id="m1", store_id="s1",
             kind="portal_login", rssi=-50),
        base("e4", "browse", T0 + 7 * MINUTE, "app", device_id="d1", member_id="m1", sku="sku-9"),
        base("e5", "purchase", T0 + 20 * MINUTE, "pos", member_id="m1", store_id="s1", order_id="o1",
             status="paid", amount_cents=1999),
    ]
    send(pipeline_settings, events)
    start_worker()

    wait_for(lambda: sessionised_ids(pipeline_settings) == {"e1", "e2", "e3", "e4", "e5"}, 90, "all five sessionised")
    sessions = final_sessions(pipeline_settings)
    assert len(sessions) == 1
    session = sessions[0]
    assert (session["person_id"], session["revenue_cents"], session["online_to_offline"]) == ("m:m1", 1999, True)
    assert session["stores"] == ["s1"]
    # Which anonymous persons existed before being merged depends on arrival order across ingress
    # partitions; whatever was merged was merged into the member.
    merges = {(m["from_person"], m["to_person"]) for m in published(pipeline_settings, IDENTITY)}
    assert merges and merges <= {(f"w:{MAC_HASH}", "m:m1"), ("d:d1", "m:m1")}
    assert final_sessions(pipeline_settings) == reference_sessions(pipeline_settings)


def test_a_late_event_bridging_two_sessions_merges_them(pipeline_settings, start_worker):
    send(pipeline_settings, [base("a", "browse", T0, "app", member_id="m2"),
                             base("c", "browse", T0 + 40 * MINUTE, "app", member_id="m2")])
    worker = start_worker()
    wait_for(lambda: len(final_sessions(pipeline_settings)) == 2, 90, "two sessions 40 minutes apart")

    send(pipeline_settings, [base("b", "browse", T0 + 20 * MINUTE, "web", member_id="m2")])
    wait_for(lambda: sessionised_ids(pipeline_settings) == {"a", "b", "c"}, 90, "the late event sessionised")

    sessions = final_sessions(pipeline_settings)
    assert len(sessions) == 1 and sessions[0]["event_ids"] == ["a", "b", "c"]
    assert any(u["state"] == "absorbed" for u in published(pipeline_settings, SESSIONS))
    assert worker.total("o2o_late_events_total") == 0


def journeys(count: int, persons: int, seed: int) -> list[dict]:
    """Interleaved multi-channel activity over six hours, some of it linking devices to members.

    In time order with up to 10 minutes of jitter, as gateways upload: nothing is late."""
    rng = random.Random(seed)
    events = []
    for i in range(count):
        p = rng.randrange(persons)
        at = T0 + i * 6 * 60 * MINUTE // count + rng.randrange(10 * MINUTE)
        kind = rng.random()
        who = {"member_id": f"m{p}"} if p % 3 else {"device_id": f"dev{p}"}
        if kind < 0.05:
            who = {"member_id": f"m{p}", "device_id": f"dev{p}"}
        if kind < 0.6:
            events.append(base(f"j{i}", "browse", at, "app", sku=f"sku-{rng.randrange(50)}", **who))
        elif kind < 0.9:
            events.append(base(f"j{i}", "wifi_checkin", at, "wifi", store_id=f"s{p % 5}", kind="associate",
                               rssi=-40 - rng.randrange(50), **who))
        else:
            events.append(base(f"j{i}", "purchase", at, "pos", order_id=f"o{i}", status="paid",
                               amount_cents=rng.randrange(100, 10_000), store_id=f"s{p % 5}", **who))
    return events


@pytest.mark.timeout(300)
def test_kill_9_mid_stream_then_restart_publishes_exactly_the_sessions_of_an_uninterrupted_run(
    pipeline_settings, start_worker
):
    events = journeys(20_000, persons=400, seed=1)
    send(pipeline_settings, events)
    # A backlog read from 20 ingress partitions at different speeds looks late to a max-event-time
    # watermark (README, "Known limits"); this test is about restoring state, so nothing may be late.
    first = start_worker(O2O_AGENT_BATCH_RECORDS="1", **NOTHING_LATE)
    wait_for(lambda: 0 < first.total("o2o_journey_events_total") < len(events) / 2, 90, "the journey mid-stream")
    first.stop(kill=True)

    start_worker(**NOTHING_LATE)
    # Reading every session update is heavy: look every few seconds, not every 0.2 s.
    wait_for(lambda: len(sessionised_ids(pipeline_settings)) == len(events), 180, "every event sessionised",
             interval_s=3)

    assert final_sessions(pipeline_settings) == reference_sessions(pipeline_settings, allowed_lateness_ms=DAY)


def test_open_updates_are_held_back_and_a_restarted_journey_publishes_what_its_predecessor_held(
    pipeline_settings, start_worker
):
    held_a_minute = {"O2O_OPEN_UPDATE_INTERVAL_MS": "60000", **NOTHING_LATE}
    send(pipeline_settings, [base("a1", "browse", T0, "app", member_id="m7")])
    first = start_worker(**held_a_minute)
    wait_for(lambda: sessionised_ids(pipeline_settings) == {"a1"}, 90, "the first update, published at once")

    send(pipeline_settings, [base("a2", "browse", T0 + MINUTE, "app", member_id="m7")])
    wait_for(lambda: first.total("o2o_journey_events_total") == 2, 60, "the second event processed and stored")
    assert sessionised_ids(pipeline_settings) == {"a1"}, "the open session's next update waits for the interval"
    first.stop(kill=True)

    start_worker(**held_a_minute)
    send(pipeline_settings, [base("b1", "browse", T0 + MINUTE, "app", member_id="m8")])  # another person
    wait_for(lambda: sessionised_ids(pipeline_settings) == {"a1", "a2", "b1"}, 90,
             "the held update republished by the new owner")
    assert final_sessions(pipeline_settings) == reference_sessions(pipeline_settings)


def keep_changelog_from(settings, index: int) -> None:
    """What retention does to the head of the journey changelog, on a broker without DeleteRecords:
    the topic made again with only the records from `index` on."""
    topic = settings.topic(JOURNEY_CHANGELOG)
    tail = read_partitions(settings, topic, [0])[0][index:]
    admin = AdminClient(settings.kafka_client_config())
    admin.delete_topics([topic])[topic].result()
    wait_for(lambda: topic not in admin.list_topics(timeout=10).topics, 30, "the changelog topic deleted")
    create_topics(settings)
    producer = Producer(settings.kafka_client_config())
    for value in tail:
        producer.produce(topic, value, partition=0)
    assert producer.flush(30) == 0
    assert read_partitions(settings, topic, [0])[0] == tail


def test_a_journey_changelog_cut_before_its_last_snapshot_still_knows_every_identity(
    pipeline_settings, start_worker
):
    send(pipeline_settings, [base("p1", "browse", T0, "app", member_id="m1", device_id="d1")])  # links d1 to m1
    first = start_worker(**NOTHING_LATE)
    wait_for(lambda: first.total("o2o_journey_events_total") == 1, 90, "the link processed")
    send(pipeline_settings, [base("p2", "browse", T0 + MINUTE, "app", member_id="m2")])
    wait_for(lambda: first.total("o2o_journey_events_total") == 2, 60, "a second batch: changes, not a snapshot")
    first.stop(kill=True)

    second = start_worker(**NOTHING_LATE)  # restores; its first flush is the whole state
    send(pipeline_settings, [base("p3", "browse", T0 + 2 * MINUTE, "app", member_id="m3")])
    wait_for(lambda: second.total("o2o_state_snapshots_total") == 1, 90, "the new owner's snapshot")
    second.stop(kill=True)

    values = read_partitions(pipeline_settings, pipeline_settings.topic(JOURNEY_CHANGELOG), [0])[0]
    last_snapshot = max(i for i, value in enumerate(values) if value.startswith(SNAPSHOT_START))
    assert any(b'"i:d:d1"' in value for value in values[:last_snapshot - 1]), "the link is in the head"
    keep_changelog_from(pipeline_settings, last_snapshot)

    third = start_worker(**NOTHING_LATE)
    send(pipeline_settings, [base("p4", "browse", T0 + 3 * MINUTE, "app", device_id="d1")])  # only the device
    wait_for(lambda: sessionised_ids(pipeline_settings) == {"p1", "p2", "p3", "p4"}, 90, "every event sessionised")
    assert third.total("o2o_journey_events_total") == 1
    sessions = final_sessions(pipeline_settings)
    assert {s["person_id"] for s in sessions if "p4" in s["event_ids"]} == {"m:m1"}
    assert sessions == reference_sessions(pipeline_settings)


@pytest.mark.timeout(300)
def test_two_workers_share_partitions_and_a_rebalance_loses_and_doubles_nothing(pipeline_settings, start_worker):
    events = journeys(20_000, persons=400, seed=2)
    send(pipeline_settings, events)
    workers = [start_worker(O2O_AGENT_BATCH_RECORDS="1", **NOTHING_LATE) for _ in range(2)]
    owner = wait_for(lambda: next((w for w in workers if w.total("o2o_journey_events_total") > 0), None), 90,
                     "one worker owning the journey partition")
    owner.stop()  # graceful: a rebalance hands the partition to the other worker

    # Reading every session update is heavy: look every few seconds, not every 0.2 s.
    wait_for(lambda: len(sessionised_ids(pipeline_settings)) == len(events), 180, "every event sessionised",
             interval_s=3)
    survivor = next(w for w in workers if w is not owner)
    assert survivor.total("o2o_journey_events_total") > 0
    assert final_sessions(pipeline_settings) == reference_sessions(pipeline_settings, allowed_lateness_ms=DAY)


def test_ingest_and_journey_in_workers_of_their_own_share_one_group_without_stalling(pipeline_settings,
                                                                                      start_worker):
    """faust assigns a topic only to members subscribed to it: an ingest-only worker never gets
    `o2o.accepted`, a journey-only worker never gets the ingress topics (`o2o bench` runs this way)."""
    events = journeys(3_000, persons=60, seed=3)
    send(pipeline_settings, events)
    ingest = start_worker(O2O_WORKER_AGENTS="ingest", **NOTHING_LATE)
    journey = start_worker(O2O_WORKER_AGENTS="journey", **NOTHING_LATE)

    wait_for(lambda: journey.total("o2o_journey_events_total") == len(events), 120, "every event through the journey")
    assert ingest.total("o2o_events_accepted_total") == len(events)
    assert ingest.total("o2o_journey_events_total") == 0 and journey.total("o2o_events_accepted_total") == 0
    wait_for(lambda: len(sessionised_ids(pipeline_settings)) == len(events), 60, "every event sessionised")
    assert final_sessions(pipeline_settings) == reference_sessions(pipeline_settings, allowed_lateness_ms=DAY)
