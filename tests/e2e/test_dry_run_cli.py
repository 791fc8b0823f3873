"""`o2o dry-run` as a user runs it: the installed binary on a JSONL file, no Kafka or ClickHouse."""

import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline.privacy import IdentifierHasher
from pipeline.sessions import stable_id

O2O = str(Path(sys.executable).parent / "o2o")
SECRET = "e2e-dry-run-secret"
RAW_MAC = "AA-BB-CC-00-11-22"
PASSERBY_MAC = "aa:bb:cc:99:88:77"
NOW = "2026-11-23T00:00:00+08:00"

LINES = [
    '{"event_id": "e1", "event_type": "browse", "occurred_at": "2026-11-22T10:00:00+08:00", "channel": "app", "device_id": "ipad-7", "sku": "sku-1"}',
    f'{{"event_id": "e2", "event_type": "wifi_checkin", "occurred_at": "2026-11-22T10:20:00+08:00", "channel": "wifi", "wifi_mac": "{RAW_MAC}", "store_id": "s1", "kind": "associate", "rssi": -60}}',
    "",
    f'{{"event_id": "e3", "event_type": "wifi_checkin", "occurred_at": "2026-11-22T10:30:00+08:00", "channel": "wifi", "wifi_mac": "{RAW_MAC}", "member_id": "m1", "store_id": "s1", "kind": "portal_login", "rssi": -62}}',
    '{"event_id": "e4", "event_type": "purchase", "occurred_at": "2026-11-22T10:31:00+08:00", "channel": "pos", "member_id": "m1", "device_id": "ipad-7", "store_id": "s1", "order_id": "o1", "status": "paid", "amount_cents": 4500}',
    '{"event_id": "e4", "event_type": "purchase", "occurred_at": "2026-11-22T10:31:00+08:00", "channel": "pos", "member_id": "m1", "device_id": "ipad-7", "store_id": "s1", "order_id": "o1", "status": "paid", "amount_cents": 4500}',
    "not json at all",
    '{"event_id": "e5", "event_type": "share", "occurred_at": "2026-11-22T11:00:00+08:00", "channel": "app", "memberId": "m1", "platform": "wechat"}',
    f'{{"event_id": "e6", "event_type": "wifi_checkin", "occurred_at": "2026-11-22T10:05:00+08:00", "channel": "wifi", "wifi_mac": "{PASSERBY_MAC}", "store_id": "s1", "kind": "probe", "rssi": -85}}',
    '{"event_id": "e7", "event_type": "browse", "occurred_at": "2026-11-23T09:00:00+08:00", "channel": "web", "device_id": "pc-1"}',
]


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("O2O_")}
    return {**clean, "O2O_HASH_SECRET": SECRET}


def o2o(*args, **kwargs):
    return subprocess.run([O2O, *args], env=env(), capture_output=True, text=True, timeout=120, **kwargs)


def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(LINES) + "\n")
    return path


def test_json_document_has_the_contract_keys_and_values(tmp_path):
    run = o2o("dry-run", "--events", str(events_file(tmp_path)), "--now", NOW, "--json")

    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    hasher = IdentifierHasher(SECRET)
    mac, passerby_mac = hasher.hash_mac(RAW_MAC), hasher.hash_mac(PASSERBY_MAC)
    assert list(doc) == ["summary", "dlq", "persons", "sessions", "visits", "triggers", "suppressed"]
    assert doc["summary"] == {"read": 9, "valid": 5, "duplicates": 1, "dlq": 3, "late": 0}

    assert [(d["line"], d["event_id"], d["reason"]) for d in doc["dlq"]] == [
        (7, None, "malformed"), (8, "e5", "schema"), (10, "e7", "future_timestamp")]
    assert all(list(d) == ["line", "event_id", "reason", "detail"] for d in doc["dlq"])
    assert "not valid JSON" in doc["dlq"][0]["detail"] and "memberId" in doc["dlq"][1]["detail"]

    assert doc["persons"] == [
        {"person_id": "m:m1", "member_ids": ["m1"], "device_ids": ["ipad-7"], "wifi_mac_hashes": [mac],
         "phone_hashes": []},
        {"person_id": "w:" + passerby_mac, "member_ids": [], "device_ids": [], "wifi_mac_hashes": [passerby_mac],
         "phone_hashes": []},
    ]
    # The anonymous iPad's browsing and the phone's Wi-Fi visit end up in one session of member m1.
    assert doc["sessions"] == [
        {"session_id": stable_id("d:ipad-7", "e1"), "person_id": "m:m1", "start": "2026-11-22T02:00:00.000Z",
         "end": "2026-11-22T02:31:00.000Z", "event_ids": ["e1", "e2", "e3", "e4"],
         "counts": {"browse": 1, "wifi_checkin": 2, "purchase": 1}, "stores": ["s1"], "revenue_cents": 4500,
         "online_to_offline": True},
        {"session_id": stable_id("w:" + passerby_mac, "e6"), "person_id": "w:" + passerby_mac,
         "start": "2026-11-22T02:05:00.000Z", "end": "2026-11-22T02:05:00.000Z", "event_ids": ["e6"],
         "counts": {"wifi_checkin": 1}, "stores": ["s1"], "revenue_cents": 0, "online_to_offline": False},
    ]
    assert doc["visits"] == [
        {"person_id": "w:" + passerby_mac, "store_id": "s1", "start": "2026-11-22T02:05:00.000Z",
         "end": "2026-11-22T02:05:00.000Z", "dwell_s": 0, "class": "passerby"},
        {"person_id": "m:m1", "store_id": "s1", "start": "2026-11-22T02:20:00.000Z",
         "end": "2026-11-22T02:30:00.000Z", "dwell_s": 600, "class": "visitor"},
    ]
    # The member browsed on the tablet, then logged in on the store Wi-Fi: the visit that began with
    # the associate is now the member's, so its arrival fires a coupon; the paid
    # purchase's share invite was pending at the end of input and fires at its due time.
    assert [(t["rule"], t["person_id"], t["store_id"], t["fired_at"], t["cause_event_ids"]) for t in doc["triggers"]] == [
        ("browse_then_visit", "m:m1", "s1", "2026-11-22T02:20:00.000Z", ["e2"]),
        ("share_invite", "m:m1", "s1", "2026-11-22T04:31:00.000Z", ["e4"]),
    ]
    assert doc["suppressed"] == []
    assert RAW_MAC.lower() not in run.stdout.lower() and "aabbcc001122" not in run.stdout


def test_now_moves_the_future_bound(tmp_path):
    run = o2o("dry-run", "--events", str(events_file(tmp_path)), "--now", "2026-11-24T00:00:00Z", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)["summary"]
    assert (summary["valid"], summary["dlq"]) == (6, 2)   # e7 is no longer in the future


def test_readable_summary(tmp_path):
    path = events_file(tmp_path)
    run = o2o("dry-run", "--events", str(path), "--now", NOW)

    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert f"dry run of {path} (future timestamps judged against 2026-11-22T16:00:00.000Z)" in out
    assert "read 9 lines: 5 valid, 1 duplicate, 3 dead letters" in out
    assert "dead letters by reason: malformed 1, schema 1, future_timestamp 1" in out
    assert "line 8      schema           e5" in out
    assert "persons: 2 (1 member, 1 anonymous); 2 identity merges, 0 conflicts" in out
    assert "sessions: 2 (1 online-to-offline), paid revenue 4,500 cents" in out
    assert "visits: 2 at 1 store: 1 visitor, 1 passerby, capture rate 50.0%" in out
    assert "triggers: 2 fired, 0 suppressed" in out
    assert RAW_MAC not in out


def test_reads_stdin_with_a_dash(tmp_path):
    run = o2o("dry-run", "--events", "-", "--now", NOW, "--json", input="\n".join(LINES[:2]) + "\n")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["summary"] == {"read": 2, "valid": 2, "duplicates": 0, "dlq": 0, "late": 0}


def test_a_missing_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.jsonl"
    run = o2o("dry-run", "--events", str(missing), "--json")
    assert run.returncode == 1
    assert run.stdout == ""
    assert f"error: cannot read {missing}: No such file or directory" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_directory_and_a_bad_now_are_clear_errors(tmp_path):
    run = o2o("dry-run", "--events", str(tmp_path))
    assert run.returncode == 1 and f"error: cannot read {tmp_path}" in run.stderr and "Traceback" not in run.stderr
    run = o2o("dry-run", "--events", str(events_file(tmp_path)), "--now", "yesterday")
    assert run.returncode == 2 and "--now 'yesterday' is not a time" in run.stderr


def test_the_config_file_drives_the_policies(tmp_path):
    path = events_file(tmp_path)
    config = tmp_path / "shop.toml"
    config.write_text("[session]\ngap_ms = 120000\n[visitor]\nmin_rssi_dbm = -90\nmin_dwell_ms = 0\n")
    run = o2o("dry-run", "--events", str(path), "--now", NOW, "--config", str(config), "--json")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    # A 2-minute gap cuts member m1's morning into three sessions; with no dwell needed and a -90 dBm
    # threshold, the passer-by's single -85 dBm probe counts as a visitor.
    assert [s["event_ids"] for s in doc["sessions"]] == [["e1"], ["e6"], ["e2"], ["e3", "e4"]]
    assert [v["class"] for v in doc["visits"]] == ["visitor", "visitor"]

    config.write_text("[session]\ngap_ms = 'soon'\n")
    run = o2o("dry-run", "--events", str(path), "--config", str(config))
    assert run.returncode == 2 and "session_gap_ms" in run.stderr and "Traceback" not in run.stderr
