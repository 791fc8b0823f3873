"""The ingest agent on the real broker, run as `o2o worker`: nothing lost, nothing raw, nothing crashes."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

from agents.changelog import read_to_end
from pipeline.privacy import hash_mac, hash_phone
from pipeline.serde import EventCodec, frame
from pipeline.topics import ACCEPTED, DLQ, ingress_topics
from tests.conftest import produce, settings_env, wait_for

RAW_MAC = "AA-BB-CC-00-11-22"
RAW_PHONE = "+86 138 0013 8000"
NOW_MS = int(time.time() * 1000)


def event(i: int, **fields) -> dict:
    base = {
        "event_id": f"ev-{i}", "event_type": "browse", "occurred_at": NOW_MS - 60_000, "channel": "app",
        "source_id": None, "member_id": f"m-{i % 7}", "device_id": None, "wifi_mac_hash": None,
        "phone_hash": None, "store_id": None, "consent_marketing": None, "properties": {},
        "page": None, "sku": f"sku-{i}", "category": None, "search_query": None, "campaign": None,
    }
    return {**base, **fields}


def checkin(i: int, **fields) -> dict:
    base = {
        "event_id": f"wifi-{i}", "event_type": "wifi_checkin", "occurred_at": NOW_MS - 30_000,
        "channel": "wifi", "source_id": "gw-1", "member_id": None, "device_id": None,
        "wifi_mac_hash": None, "phone_hash": None, "store_id": "s-1", "consent_marketing": None,
        "properties": {}, "kind": "associate", "ap_id": "ap-1", "rssi": -60,
    }
    return {**base, **fields}


def read_all(settings, logical: str) -> list:
    return list(read_to_end(settings, settings.topic(logical)))


def accepted_events(settings) -> list[dict]:
    codec = EventCodec()
    return [e for m in read_all(settings, ACCEPTED) for e in codec.decode_accepted(m.value())]


def test_every_record_is_accepted_duplicate_or_dead_letter_and_the_agent_survives_garbage(
    pipeline_settings, start_worker
):
    codec = EventCodec()
    rng = random.Random(7)
    good = [codec.encode(event(i)) for i in range(200)]
    duplicates = [codec.encode(event(i)) for i in range(0, 200, 10)]
    garbage = [rng.randbytes(rng.randint(0, 300)) for _ in range(40)]
    null_values = [None, None]  # tombstones: they once crashed the worker, on every restart
    truncated = [g[: rng.randint(5, len(g) - 1)] for g in good[:20]]
    wrong_magic = [b"\x01" + g[1:] for g in good[20:30]]
    unknown_schema_id = [frame(4242, g[5:]) for g in good[30:40]]
    huge = [codec.encode(event(1000 + i, sku="x" * 200_000)) for i in range(3)]
    wrong_values = [
        codec.encode(event(2000, occurred_at=NOW_MS + 3_600_000)),             # future_timestamp
        codec.encode(event(2001, member_id=None)),                             # no_identity
        codec.encode(checkin(2002, store_id=None)),                            # invalid_value
        codec.encode(checkin(2003, rssi=40)),                                  # invalid_value
    ]
    batch = [codec.encode_batch([event(3000 + i) for i in range(50)])]
    records = (good + duplicates + garbage + null_values + truncated + wrong_magic + unknown_schema_id + huge
               + wrong_values)
    expected_events = len(records) + 50
    topic = ingress_topics(pipeline_settings)["browse"]
    # Keyed by routing key, as producers should (librdkafka's default partitioner = pipeline.topics.partition_for),
    # so every copy of an event lands on one partition.
    member_of = [i % 7 for i in range(200)] + [i % 7 for i in range(0, 200, 10)]
    produce(pipeline_settings, topic, good + duplicates, key=lambda n: f"m-{member_of[n]}".encode())
    produce(pipeline_settings, topic, records[len(good) + len(duplicates):] + batch)
    worker = start_worker()

    def all_counted():
        counts = [worker.total(m) for m in
                  ("o2o_events_accepted_total", "o2o_duplicates_total", "o2o_dead_letters_total")]
        return counts if sum(counts) >= expected_events else None

    accepted, duplicate_count, dead_count = wait_for(all_counted, 90, "every record counted by the worker")

    assert worker.process.poll() is None, f"the worker died:\n{worker.log_tail()}"
    assert (accepted, duplicate_count) == (200 + 50, len(duplicates))
    assert accepted + duplicate_count + dead_count == expected_events
    dead_letters = [codec.decode_dead_letter(m.value()) for m in read_all(pipeline_settings, DLQ)]
    assert len(dead_letters) == dead_count
    reasons = [d["reason"] for d in dead_letters]
    assert reasons.count("future_timestamp") == 1 and reasons.count("no_identity") == 1
    assert reasons.count("invalid_value") == 2 + len(huge)
    assert all(d["source_topic"] == topic and d["detail"] for d in dead_letters)
    assert sorted(e["event_id"] for e in accepted_events(pipeline_settings)) == sorted(
        [f"ev-{i}" for i in range(200)] + [f"ev-{3000 + i}" for i in range(50)]
    )


def test_raw_mac_and_phone_from_a_foreign_producer_never_reach_an_output_topic(pipeline_settings, start_worker):
    codec = EventCodec()
    raw = [
        codec.encode(checkin(1, wifi_mac=RAW_MAC), allow_raw_identifiers=True),
        codec.encode(event(1, member_id=None, phone=RAW_PHONE), allow_raw_identifiers=True),
        codec.encode(checkin(2, wifi_mac=RAW_MAC, rssi=99), allow_raw_identifiers=True),  # rejected
    ]
    produce(pipeline_settings, ingress_topics(pipeline_settings)["wifi_checkin"], [raw[0], raw[2]])
    produce(pipeline_settings, ingress_topics(pipeline_settings)["browse"], [raw[1]])
    worker = start_worker()
    wait_for(lambda: worker.total("o2o_events_accepted_total") + worker.total("o2o_dead_letters_total") >= 3,
             90, "three events processed")

    secret = pipeline_settings.effective_hash_secret
    accepted = {e["event_id"]: e for e in accepted_events(pipeline_settings)}
    assert accepted["wifi-1"]["wifi_mac_hash"] == hash_mac(RAW_MAC, secret)
    assert accepted["ev-1"]["phone_hash"] == hash_phone(RAW_PHONE, secret)
    spellings = [RAW_MAC, RAW_MAC.lower(), RAW_MAC.replace("-", ":").lower(), "aabbcc001122", "13800138000"]
    for logical in (ACCEPTED, DLQ):
        for message in read_all(pipeline_settings, logical):
            blob = message.value().lower()
            assert not any(s.lower().encode() in blob for s in spellings), f"raw identifier on {logical}"
    assert not any(s.lower() in worker.log_tail(10_000).lower() for s in spellings)


def test_restarted_worker_still_knows_accepted_event_ids_and_replay_accepts_fixed_input(
    pipeline_settings, start_worker
):
    codec = EventCodec()
    topic = ingress_topics(pipeline_settings)["purchase"]
    purchase = {**event(1), "event_id": "order-1", "event_type": "purchase", "channel": "pos",
                # Two minutes ahead of now (not of the module's import: the suite may run for long).
                "occurred_at": int(time.time() * 1000) + 120_000, "order_id": "o-1", "status": "paid", "amount_cents": 1999,
                "currency": "CNY", "items": []}
    for key in ("page", "sku", "category", "search_query", "campaign"):
        purchase.pop(key)
    produce(pipeline_settings, ingress_topics(pipeline_settings)["browse"], [codec.encode(event(77))], key=lambda _: b"m-0")
    produce(pipeline_settings, topic, [codec.encode(purchase)])
    strict = start_worker(O2O_VALIDATION_MAX_FUTURE_SKEW_MS="1000")
    wait_for(lambda: strict.total("o2o_dead_letters_total") >= 1 and strict.total("o2o_events_accepted_total") >= 1,
             90, "the future purchase rejected and the browse accepted")
    strict.stop()

    lenient = start_worker(O2O_VALIDATION_MAX_FUTURE_SKEW_MS="600000")
    produce(pipeline_settings, ingress_topics(pipeline_settings)["browse"], [codec.encode(event(77))], key=lambda _: b"m-0")
    o2o = str(Path(sys.executable).parent / "o2o")
    replay = subprocess.run([o2o, "dlq", "replay", "--reason", "future_timestamp", "--json"],
                            env=settings_env(pipeline_settings), capture_output=True, text=True, timeout=60)
    assert replay.returncode == 0, replay.stderr
    assert '"replayed": 1' in replay.stdout

    wait_for(lambda: lenient.total("o2o_duplicates_total") >= 1 and lenient.total("o2o_events_accepted_total") >= 1,
             90, "the re-sent browse counted as duplicate and the replayed purchase accepted")
    assert "order-1" in {e["event_id"] for e in accepted_events(pipeline_settings)}
    assert [e["event_id"] for e in accepted_events(pipeline_settings)].count("ev-77") == 1


def test_kill_9_mid_stream_loses_no_accepted_event(pipeline_settings, start_worker):
    codec = EventCodec()
    topic = ingress_topics(pipeline_settings)["browse"]
    total = 40_000
    # Records as the SDK sends them: batches of one type whose events share a partition.
    by_member: dict[int, list[dict]] = {}
    for i in range(total):
        by_member.setdefault(i % 7, []).append(event(i))
    records, keys = [], []
    for member, events in by_member.items():
        for start in range(0, len(events), 100):
            records.append(codec.encode_batch(events[start:start + 100]))
            keys.append(f"m-{member}".encode())
    produce(pipeline_settings, topic, records, key=lambda n: keys[n])

    first = start_worker(O2O_AGENT_BATCH_RECORDS="5")
    wait_for(lambda: 0 < first.total("o2o_events_accepted_total") < total, 90, "the first worker mid-stream")
    first.stop(kill=True)
    second = start_worker()
    wait_for(lambda: len({e["event_id"] for e in accepted_events(pipeline_settings)}) == total, 120,
             "every event accepted after the restart")

    assert second.total("o2o_dead_letters_total") == 0


def test_a_partition_the_ingest_group_never_committed_starts_where_the_faust_agent_group_left_it(
    pipeline_settings, start_worker
):
    """Workers before ingest ran on confluent-kafka committed in faust's group, `<prefix>-pipeline`:
    an upgraded worker must not ingest again what those had done."""
    from confluent_kafka import Consumer, TopicPartition

    from agents.lag import pipeline_group

    codec = EventCodec()
    topic = ingress_topics(pipeline_settings)["browse"]
    produce(pipeline_settings, topic, [codec.encode(event(i)) for i in range(10)], key=lambda i: f"m-{i % 7}".encode())
    done = {}  # what the old agent had processed: all ten
    for message in read_to_end(pipeline_settings, topic):
        done[message.partition()] = message.offset() + 1
    old = Consumer({**pipeline_settings.kafka_client_config(), "group.id": pipeline_group(pipeline_settings)})
    old.commit(offsets=[TopicPartition(topic, p, offset) for p, offset in done.items()], asynchronous=False)
    old.close()
    produce(pipeline_settings, topic, [codec.encode(event(i)) for i in range(10, 15)],
            key=lambda i: f"m-{i % 7}".encode())

    worker = start_worker(O2O_WORKER_AGENTS="ingest")
    wait_for(lambda: worker.total("o2o_events_accepted_total") == 5, 90, "the five new events accepted")
    assert sorted(e["event_id"] for e in accepted_events(pipeline_settings)) == [f"ev-{i}" for i in range(10, 15)]
