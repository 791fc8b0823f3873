"""The HTTP collector as a real process (`o2o collector`) against the real broker, over real HTTP.

A 202 means the broker acknowledged the events: each test reads the ingress topics right after its
202s, with no waiting. The buffer-full and shutdown tests pause the test run's own broker with
SIGSTOP so requests are provably in flight, then let it go with SIGCONT.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from agents.changelog import read_to_end
from pipeline.config import Settings
from pipeline.privacy import hash_mac
from pipeline.serde import EventCodec
from pipeline.stack import LocalStack
from pipeline.topics import ingress_topics
from tests.collector_payloads import SECRET, STORE_MAP, V2_CLIENT_MACS, V3_CLIENT_MACS, VALIDATOR, meraki_v2, meraki_v3
from tests.conftest import free_port, settings_env, wait_for

O2O = str(Path(sys.executable).parent / "o2o")
HASH_SECRET = "collector-test-hash-secret"
APP_KEY = "app-key-0123456789abcdef"
GW_KEY = "gw-key-0123456789abcdef"
SLOW_KEY = "slow-key-0123456789abcdef"
KEYS = [
    {"key": APP_KEY, "source": "app-ios", "types": ["browse", "wifi_checkin", "purchase"]},
    {"key": GW_KEY, "source": "gw-fleet", "types": ["wifi_checkin"]},
    {"key": SLOW_KEY, "source": "slow", "rate_limit_events_per_s": 20, "rate_limit_burst": 100},
]
RAW_MAC = "AA-BB-CC-00-11-22"
RAW_PHONE = "+86 138 0013 8000"


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


class CollectorProcess:
    def __init__(self, settings: Settings, tmp_path: Path, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        store_map = tmp_path / "stores.json"
        store_map.write_text(json.dumps(STORE_MAP))
        self.log_path = tmp_path / f"collector-{self.port}.log"
        env = settings_env(settings, **{
            "O2O_HASH_SECRET": HASH_SECRET, "O2O_COLLECTOR_API_KEYS": json.dumps(KEYS),
            "O2O_MERAKI_VALIDATOR": VALIDATOR, "O2O_MERAKI_SECRET": SECRET, "O2O_MERAKI_STORE_MAP": str(store_map),
            **env})
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([O2O, "collector", "--port", str(self.port)], env=env,
                                            stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._up, 30, f"the collector to answer /healthz (log: {self.log_path})")

    def _up(self) -> bool:
        assert self.process.poll() is None, f"collector exited: {self.log()}"
        try:
            return self.get("/healthz").status == 200
        except OSError:
            return False

    def post(self, path: str, body, key: str | None = APP_KEY, headers: dict | None = None) -> Reply:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if key:
            all_headers["Authorization"] = f"Bearer {key}"
        return http(urllib.request.Request(self.url + path, data=data, headers=all_headers, method="POST"))

    def get(self, path: str) -> Reply:
        return http(urllib.request.Request(self.url + path))

    def metric(self, name: str) -> float:
        text = self.get("/metrics").body.decode()
        return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
                   if line.startswith(name + "{") or line.startswith(name + " "))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def http(request: urllib.request.Request, timeout: float = 60) -> Reply:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), error.read())


@pytest.fixture
def collector(pipeline_settings, tmp_path):
    started: list[CollectorProcess] = []

    def start(**env: str) -> CollectorProcess:
        started.append(CollectorProcess(pipeline_settings, tmp_path, **env))
        return started[-1]

    yield start
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait()


def on_kafka(settings: Settings) -> dict[str, dict]:
    """event_id -> event, of everything on the ingress topics now."""
    codec, found = EventCodec(), {}
    for topic in ingress_topics(settings).values():
        for message in read_to_end(settings, topic):
            found.update({e["event_id"]: e for e in codec.decode(message.value())})
    return found


def browse(event_id: str, **fields) -> dict:
    return {"event_id": event_id, "event_type": "browse", "occurred_at": "2026-11-22T10:00:00+08:00",
            "channel": "app", "member_id": "m-1", **fields}


@contextmanager
def broker_paused(settings: Settings):
    """SIGSTOP the test run's broker: produce requests stay unacknowledged until it resumes."""
    (broker,) = [s for s in LocalStack(settings).status() if s.name == "broker"]
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(broker.pid, signal.SIGCONT)


# --- /v1/events ---------------------------------------------------------------------------------

def test_array_jsonl_and_gzip_bodies_are_on_kafka_when_answered_202(collector, pipeline_settings):
    c = collector()
    array = c.post("/v1/events", [browse("a1"), browse("a2", sku="sku-1"), browse("bad", amount=3)])
    jsonl = c.post("/v1/events", "\n".join(json.dumps(browse(f"j{i}")) for i in range(3)).encode() + b"\nnot json\n")
    gzipped = c.post("/v1/events", gzip.compress(json.dumps([browse("g1")]).encode()),
                     headers={"Content-Encoding": "gzip"})

    assert (array.status, jsonl.status, gzipped.status) == (202, 202, 202)
    assert (array.json["accepted"], array.json["rejected"]) == (2, 1)
    assert array.json["rejections"] == [{"index": 2, "event_id": "bad", "reason": "schema",
                                         "detail": array.json["rejections"][0]["detail"]}]
    assert "'amount'" in array.json["rejections"][0]["detail"]
    assert (jsonl.json["accepted"], jsonl.json["rejections"][0]["reason"]) == (3, "malformed")
    assert gzipped.json["accepted"] == 1
    events = on_kafka(pipeline_settings)  # no waiting: a 202 means the broker has them
    assert set(events) == {"a1", "a2", "j0", "j1", "j2", "g1"}
    assert events["a2"]["source_id"] == "app-ios" and events["a2"]["sku"] == "sku-1"
    stats = c.get("/v1/stats").json
    assert stats["accepted"] == {"app-ios": {"browse": 6}}
    assert stats["rejected"] == {"app-ios": {"browse": {"schema": 1}, "unknown": {"malformed": 1}}}
    assert c.metric("o2o_collector_events_accepted_total") == 6


def test_auth_errors_are_401_and_a_type_the_key_may_not_send_is_rejected_per_event(collector):
    c = collector()
    for key, headers in [(None, {}), ("not-a-key-0123456789", {}), (None, {"Authorization": APP_KEY})]:
        reply = c.post("/v1/events", [browse("x")], key=key, headers=headers)
        assert reply.status == 401 and reply.json["error"] == "unauthorized"
        assert "Bearer" in reply.json["message"] or "unknown API key" in reply.json["message"]
    share = {"event_id": "s1", "event_type": "share", "occurred_at": 1795314600000, "member_id": "m1",
             "platform": "wechat"}
    reply = c.post("/v1/events", [share, browse("b1", source_id="someone-else")])
    assert reply.status == 202 and reply.json["accepted"] == 0
    details = [r["detail"] for r in reply.json["rejections"]]
    assert "not allowed for this API key" in details[0] and "source_id does not match" in details[1]


def test_unreadable_bodies_are_400_and_oversized_ones_413(collector):
    c = collector(O2O_COLLECTOR_MAX_BODY_BYTES="4096", O2O_COLLECTOR_MAX_EVENTS_PER_REQUEST="5")
    for body in (b"", b"hello", b"[{", b"\xff\xfe"):
        reply = c.post("/v1/events", body)
        assert reply.status == 400 and reply.json["error"] == "bad_request" and reply.json["message"]
    too_big = c.post("/v1/events", [browse(f"e{i}", page="p" * 100) for i in range(40)])
    assert too_big.status == 413 and "collector_max_body_bytes" in too_big.json["message"]
    bomb = c.post("/v1/events", gzip.compress(b"[" + b" " * 100_000 + b"]"), headers={"Content-Encoding": "gzip"})
    assert bomb.status == 413 and "decompressed" in bomb.json["message"]
    too_many = c.post("/v1/events", [browse(f"e{i}") for i in range(6)])
    assert too_many.status == 413 and "collector_max_events_per_request" in too_many.json["message"]
    long_string = c.post("/v1/events", [browse("long", page="p" * 2000)])
    assert long_string.status == 202 and long_string.json["rejections"][0]["reason"] == "invalid_value"
    assert c.get("/nowhere").status == 404


def test_string_length_limit_is_configurable(collector):
    c = collector(O2O_VALIDATION_MAX_STRING_LEN="20")
    reply = c.post("/v1/events", [browse("ok", page="p" * 20), browse("long", page="p" * 21)])
    assert reply.json["accepted"] == 1
    assert reply.json["rejections"][0]["event_id"] == "long" and "limit is 20" in reply.json["rejections"][0]["detail"]


def test_over_the_rate_limit_is_429_with_retry_after(collector):
    c = collector()
    first = c.post("/v1/events", [browse(f"r{i}") for i in range(100)], key=SLOW_KEY)
    second = c.post("/v1/events", [browse(f"s{i}") for i in range(50)], key=SLOW_KEY)
    assert first.status == 202
    assert second.status == 429 and second.json["error"] == "rate_limited"
    assert 1 <= int(second.headers["Retry-After"]) <= 3   # 50 events at 20/s
    assert c.post("/v1/events", [browse("other-key")]).status == 202  # buckets are per key


# --- buffer and shutdown ----------------------------------------------------------------------------

def test_a_full_buffer_answers_503_with_retry_after_and_nothing_is_lost(collector, pipeline_settings, stack):
    c = collector(O2O_COLLECTOR_BUFFER_EVENTS="150")
    c.post("/v1/events", [browse("warm-up")])
    with ThreadPoolExecutor(2) as pool, broker_paused(stack):
        held = pool.submit(c.post, "/v1/events", [browse(f"h{i}") for i in range(100)])
        wait_for(lambda: c.metric("o2o_collector_buffer_events") == 100, 10, "100 events in flight")
        refused = c.post("/v1/events", [browse(f"x{i}") for i in range(100)])
        assert refused.status == 503 and refused.json["error"] == "buffer_full"
        assert refused.headers["Retry-After"] == "1"
    assert held.result(timeout=60).status == 202
    assert {f"h{i}" for i in range(100)} <= set(on_kafka(pipeline_settings))


def test_sigterm_lets_requests_in_flight_finish_and_flushes(collector, pipeline_settings, stack):
    c = collector()
    with ThreadPoolExecutor(3) as pool:
        with broker_paused(stack):
            held = [pool.submit(c.post, "/v1/events", [browse(f"t{n}-{i}") for i in range(50)]) for n in range(3)]
            wait_for(lambda: c.metric("o2o_collector_buffer_events") == 150, 10, "150 events in flight")
            c.process.terminate()
            wait_for(lambda: b"draining" in c.log_path.read_bytes(), 10, "the collector to start draining")
            assert not any(f.done() for f in held)
        replies = [f.result(timeout=60) for f in held]
    assert [r.status for r in replies] == [202, 202, 202]
    assert c.process.wait(timeout=60) == 0
    with pytest.raises(OSError):
        c.get("/healthz")
    assert {f"t{n}-{i}" for n in range(3) for i in range(50)} <= set(on_kafka(pipeline_settings))


# --- gateways ---------------------------------------------------------------------------------------

def test_meraki_validator_v2_v3_wrong_secret_and_unknown_ap(collector, pipeline_settings):
    c = collector()
    validator = c.get("/v1/gateways/meraki")
    assert validator.status == 200 and validator.body.decode() == VALIDATOR
    assert validator.headers["Content-Type"].startswith("text/plain")

    v2 = c.post("/v1/gateways/meraki", meraki_v2(), key=None)
    v3 = c.post("/v1/gateways/meraki", gzip.compress(json.dumps(meraki_v3()).encode()), key=None,
                headers={"Content-Encoding": "gzip"})
    assert (v2.status, v2.json["accepted"], v3.status, v3.json["accepted"]) == (202, 2, 202, 3)
    for wrong in (meraki_v2(secret="guess"), {k: v for k, v in meraki_v3().items() if k != "secret"}):
        reply = c.post("/v1/gateways/meraki", wrong, key=None)
        assert reply.status == 403 and "secret" in reply.json["message"]

    unknown = meraki_v2()
    unknown["data"]["apMac"] = "00:18:0a:13:dd:ff"
    reply = c.post("/v1/gateways/meraki", unknown, key=None)
    assert reply.status == 202 and reply.json["accepted"] == 0
    assert reply.json["unknown_stores"] == {"observations": 2, "networks": {}, "aps": {"00:18:0a:13:dd:ff": 2}}
    stats = c.get("/v1/stats").json
    assert stats["unknown_stores"]["aps"] == {"00:18:0a:13:dd:ff": 2} and stats["accepted"]["meraki"] == {"wifi_checkin": 5}
    assert c.metric("o2o_collector_unknown_store_sightings_total") == 2
    assert "00:18:0a:13:dd:ff" in c.log() and "meraki_store_map" in c.log()

    events = [e for e in on_kafka(pipeline_settings).values() if e["source_id"] == "meraki"]
    assert sorted((e["store_id"], e["rssi"], e["kind"]) for e in events) == [
        ("sh-ap-store", -32, "associate"), ("sh-network-store", -60, "probe"), ("sh-network-store", -30, "associate"),
        ("sh-xuhui-01", -48, "associate"), ("sh-xuhui-01", -48, "probe")]
    assert {e["wifi_mac_hash"] for e in events} == {hash_mac(m, HASH_SECRET) for m in V2_CLIENT_MACS + V3_CLIENT_MACS}


def test_meraki_without_configuration_says_what_to_set(collector):
    c = collector(O2O_MERAKI_VALIDATOR="", O2O_MERAKI_SECRET="")
    assert c.get("/v1/gateways/meraki").status == 404
    reply = c.post("/v1/gateways/meraki", meraki_v2(), key=None)
    assert reply.status == 403 and "O2O_MERAKI_SECRET" in reply.json["message"]


def test_generic_gateway_posts(collector, pipeline_settings):
    c = collector()
    post = {"gateway_id": "gw-7", "store_id": "sh-xuhui-01", "observations": [
        {"mac": "aa:bb:cc:00:99:01", "rssi": -61, "time": "2026-11-22T10:31:05+08:00", "associated": True},
        {"mac": "aabb.cc00.9902", "rssi": -99, "time": 1795314665000},
        {"mac": "aa:bb:cc:00:99:03", "rssi": -130, "time": 1795314665000}]}
    reply = c.post("/v1/gateways/generic", post, key=GW_KEY)
    assert reply.status == 202 and reply.json["accepted"] == 2
    assert [(r["index"], r["reason"]) for r in reply.json["rejections"]] == [(2, "invalid_value")]
    assert c.post("/v1/gateways/generic", post, key=None).status == 401
    assert c.post("/v1/gateways/generic", {"store_id": "s"}, key=GW_KEY).status == 400
    events = [e for e in on_kafka(pipeline_settings).values() if e["source_id"] == "gw-fleet"]
    assert sorted(e["kind"] for e in events) == ["associate", "probe"]
    assert all(e["properties"] == {"gateway_id": "gw-7"} for e in events)


# --- operations and privacy -----------------------------------------------------------------------

def test_health_readiness_and_metrics(collector):
    c = collector()
    assert c.get("/healthz").json == {"status": "ok"}
    assert c.get("/readyz").json["status"] == "ready"
    c.post("/v1/events", [browse("m1")])
    text = c.get("/metrics").body.decode()
    for name in ("o2o_collector_requests_total", "o2o_collector_request_seconds_bucket", "o2o_collector_buffer_events",
                 "o2o_collector_buffer_capacity_events", "o2o_collector_events_accepted_total"):
        assert name in text
    assert 'o2o_collector_requests_total{endpoint="events",status="202"} 1.0' in text


def test_no_raw_mac_or_phone_reaches_any_topic_the_log_or_a_response(collector, pipeline_settings):
    c = collector(O2O_LOG_LEVEL="DEBUG")
    replies = [
        c.post("/v1/events", [
            {"event_id": "p1", "event_type": "wifi_checkin", "occurred_at": 1795314600000, "wifi_mac": RAW_MAC,
             "phone": RAW_PHONE, "store_id": "s1", "kind": "associate"},
            {"event_id": "p2", "event_type": "browse", "occurred_at": 1795314600000, "phone": RAW_PHONE, "sku": 5},
            {"event_id": "p3", "event_type": "wifi_checkin", "occurred_at": 1795314600000, "wifi_mac": RAW_MAC,
             "kind": "associate"},
        ]),
        c.post("/v1/gateways/meraki", meraki_v2(), key=None),
        c.post("/v1/gateways/meraki", meraki_v3(), key=None),
        c.post("/v1/gateways/generic", {"gateway_id": "g", "store_id": "s", "observations": [
            {"mac": RAW_MAC, "time": 1795314600000}, {"mac": RAW_MAC[:-3], "time": 1795314600000}]}, key=GW_KEY),
    ]
    assert [r.status for r in replies] == [202, 202, 202, 202]
    c.get("/v1/stats")
    assert c.stop() == 0

    macs = [RAW_MAC, *V2_CLIENT_MACS, *V3_CLIENT_MACS]
    needles = {spelling for mac in macs for spelling in _spellings(mac)} | {"13800138000", "138 0013 8000"}
    haystacks = {"log": c.log().encode().lower()}
    haystacks.update({f"response {i}": r.body.lower() for i, r in enumerate(replies)})
    topics = [t for t in AdminClient(pipeline_settings.kafka_client_config()).list_topics(timeout=10).topics
              if t.startswith(pipeline_settings.topic_prefix + ".")]
    assert len(topics) >= 5
    for topic in topics:
        haystacks[topic] = b"".join((m.value() or b"") + (m.key() or b"") for m in read_to_end(pipeline_settings, topic))
    assert sum(len(h) for name, h in haystacks.items() if name.startswith(pipeline_settings.topic_prefix)) > 500
    for name, haystack in haystacks.items():
        for needle in needles:
            assert needle.encode() not in haystack, f"{needle!r} found in {name}"


def _spellings(mac: str) -> set[str]:
    compact = mac.replace(":", "").replace("-", "").lower()
    pairs = [compact[i:i + 2] for i in range(0, 12, 2)]
    return {compact, ":".join(pairs), "-".join(pairs), ".".join(compact[i:i + 4] for i in range(0, 12, 4))}
