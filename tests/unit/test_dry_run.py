"""pipeline.dry_run: the pure core over JSONL lines, as `o2o dry-run` runs it (no Kafka, no ClickHouse)."""

from __future__ import annotations

import gc
import itertools
import json
import random
import re

import pytest
from journey_events import MINUTE, T0, at

from pipeline.config import load_settings
from pipeline.dry_run import DOCUMENT_KEYS, STEPS, SUMMARY_KEYS, DryRun, format_report, run_lines
from pipeline.events import format_occurred_at
from pipeline.privacy import IdentifierHasher
from pipeline.simulate import Mix, Simulation

HOUR = 60 * MINUTE
NOW = T0 + 24 * HOUR
SECRET = "test-dry-run-secret"
RAW_MAC = "AA-BB-CC-00-11-22"

_TYPE_FIELDS = {
    "browse": {"page": "home"},
    "wifi_checkin": {"kind": "probe", "ap_id": "ap-1", "rssi": -60},
    "purchase": {"order_id": "o-1", "status": "paid", "amount_cents": 0, "currency": "CNY"},
    "share": {"platform": "wechat"},
    "complaint": {"complaint_id": "c-1", "category": "service", "severity": "high"},
}
_CHANNEL = {"browse": "app", "wifi_checkin": "wifi", "purchase": "pos", "share": "app", "complaint": "call_center"}


def line(event_id: str, minute: float, event_type: str = "browse", **fields) -> str:
    """One canonical-JSON input line; identifiers and type fields via keywords."""
    out = {"event_id": event_id, "event_type": event_type, "occurred_at": at(minute),
           "channel": _CHANNEL[event_type], **_TYPE_FIELDS[event_type], **fields}
    if not any(k in out for k in ("member_id", "device_id", "wifi_mac_hash", "phone_hash", "wifi_mac", "phone")):
        out["device_id"] = "dev-1"
    return json.dumps(out)


def wifi(event_id: str, minute: float, kind: str = "probe", rssi: int | None = -60, mac: str = "mac-a",
         store: str = "S1", **fields) -> str:
    """A check-in of a pre-hashed MAC (any 64-hex digest passes validation; tests name them short)."""
    return line(event_id, minute, "wifi_checkin", kind=kind, rssi=rssi, wifi_mac_hash=fake_hash(mac),
                store_id=store, **fields)


def fake_hash(name: str) -> str:
    return name.encode().hex().ljust(64, "0")[:64]


def new_dry_run(now_ms: int = NOW, **settings) -> DryRun:
    return DryRun.from_settings(load_settings(None, hash_secret=SECRET, **settings), now_ms)


def dry_run(lines: list[str], batch_lines: int = 5_000, **settings) -> dict:
    return run_lines(lines, new_dry_run(**settings), batch_lines).to_dict()


def sessions_by_events(doc: dict) -> dict[tuple[str, ...], dict]:
    return {tuple(sorted(s["event_ids"])): s for s in doc["sessions"]}


# --- the document ------------------------------------------------------------------------------------


def test_the_document_has_exactly_the_contract_keys_and_counts_add_up():
    doc = dry_run([line("a", 0, device_id="ipad"), line("a", 1, device_id="ipad"), "{", "",
                   wifi("w", 2)])
    assert tuple(doc) == DOCUMENT_KEYS
    assert tuple(doc["summary"]) == SUMMARY_KEYS == ("read", "valid", "duplicates", "dlq", "late")
    assert doc["summary"] == {"read": 4, "valid": 2, "duplicates": 1, "dlq": 1, "late": 0}
    assert doc["triggers"] == [] and doc["suppressed"] == []
    assert set(doc["persons"][0]) == {"person_id", "member_ids", "device_ids", "wifi_mac_hashes", "phone_hashes"}
    assert set(doc["sessions"][0]) == {"session_id", "person_id", "start", "end", "event_ids", "counts", "stores",
                                       "revenue_cents", "online_to_offline"}
    assert set(doc["visits"][0]) == {"person_id", "store_id", "start", "end", "dwell_s", "class"}
    assert json.loads(json.dumps(doc)) == doc


def test_an_empty_input_gives_an_empty_document():
    assert dry_run(["", "  "]) == {"summary": dict.fromkeys(SUMMARY_KEYS, 0), "dlq": [], "persons": [],
                                   "sessions": [], "visits": [], "triggers": [], "suppressed": []}


# --- identity -----------------------------------------------------------------------------------------


def test_identity_merge_moves_the_anonymous_devices_session_to_the_member():
    doc = dry_run([line("a", 0, device_id="ipad"), line("b", 5, device_id="ipad"),
                   line("c", 10, "purchase", member_id="42", device_id="ipad", amount_cents=4500, store_id="S1")])
    (person,) = doc["persons"]
    assert person == {"person_id": "m:42", "member_ids": ["42"], "device_ids": ["ipad"], "wifi_mac_hashes": [],
                      "phone_hashes": []}
    (session,) = doc["sessions"]
    assert session["person_id"] == "m:42" and session["event_ids"] == ["a", "b", "c"]
    assert session["counts"] == {"browse": 2, "purchase": 1} and session["revenue_cents"] == 4500
    assert session["online_to_offline"] is True and session["stores"] == ["S1"]
    assert (session["start"], session["end"]) == (format_occurred_at(at(0)), format_occurred_at(at(10)))


def test_a_session_closed_before_the_merge_is_re_pointed_to_the_surviving_person():
    # The device's session closes (the watermark moves hours on) before the device is identified.
    doc = dry_run([line("a", 0, device_id="ipad"), line("x", 300, device_id="other"),
                   line("b", 301, member_id="42", device_id="ipad")])
    assert [p["person_id"] for p in doc["persons"]] == ["d:other", "m:42"]
    assert [(s["event_ids"], s["person_id"]) for s in doc["sessions"]] == [
        (["a"], "m:42"), (["x"], "d:other"), (["b"], "m:42")]


def test_merges_chain_and_only_surviving_persons_are_listed():
    doc = dry_run([wifi("w1", 0, mac="mac-a"), line("b1", 1, device_id="ipad"),
                   line("b2", 2, device_id="ipad", wifi_mac_hash=fake_hash("mac-a")),   # w -> d
                   line("b3", 3, device_id="ipad", member_id="42")])                   # d -> m
    assert [p["person_id"] for p in doc["persons"]] == ["m:42"]
    assert {s["person_id"] for s in doc["sessions"]} == {"m:42"}
    assert {v["person_id"] for v in doc["visits"]} == {"m:42"}


def test_raw_identifiers_are_hashed_with_the_configured_secret_and_never_printed():
    doc = dry_run([line("a", 0, "wifi_checkin", wifi_mac=RAW_MAC, store_id="S1", kind="probe", rssi=-80,
                        phone="+86 138 0013 8000")])
    hasher = IdentifierHasher(SECRET)
    (person,) = doc["persons"]
    assert person["wifi_mac_hashes"] == [hasher.hash_mac(RAW_MAC)]
    assert person["phone_hashes"] == [hasher.hash_phone("+8613800138000")]
    text = json.dumps(doc).lower()
    assert "aa-bb-cc" not in text and "aabbcc001122" not in text and "13800138000" not in text


# --- sessions ------------------------------------------------------------------------------------------


def test_a_late_event_bridging_two_sessions_merges_them_and_the_absorbed_id_is_gone():
    first_two = dry_run([line("a", 0), line("b", 50)])
    assert [s["event_ids"] for s in first_two["sessions"]] == [["a"], ["b"]]
    doc = dry_run([line("a", 0), line("b", 50), line("c", 25)])
    (session,) = doc["sessions"]
    assert session["session_id"] == first_two["sessions"][0]["session_id"]  # the earlier one survives
    assert sorted(session["event_ids"]) == ["a", "b", "c"] and session["counts"] == {"browse": 3}
    assert doc["summary"]["late"] == 0


def test_an_event_beyond_the_allowed_lateness_is_counted_late_and_in_no_session():
    doc = dry_run([line("a", 0, device_id="ipad"), line("b", 120, device_id="ipad"),
                   line("old", 30, member_id="42", device_id="ipad")],
                  allowed_lateness_ms=60 * MINUTE)
    assert doc["summary"] == {"read": 3, "valid": 3, "duplicates": 0, "dlq": 0, "late": 1}
    assert all("old" not in s["event_ids"] for s in doc["sessions"])
    # It still linked the device to the member: one person, its sessions re-pointed.
    assert [p["person_id"] for p in doc["persons"]] == ["m:42"]
    assert [(s["event_ids"], s["person_id"]) for s in doc["sessions"]] == [(["a"], "m:42"), (["b"], "m:42")]


def test_a_duplicate_event_id_is_counted_and_not_sessionised_again():
    doc = dry_run([line("a", 0), line("b", 3), line("a", 0), line("a", 1)])
    assert doc["summary"]["duplicates"] == 2 and doc["summary"]["valid"] == 2
    (session,) = doc["sessions"]
    assert session["event_ids"] == ["a", "b"] and session["counts"] == {"browse": 2}


def test_sessions_are_sorted_by_start_then_id():
    doc = dry_run([line("late-starter", 200, device_id="d2"), line("p1", 100, device_id="d1"),
                   line("p3", 100, device_id="d3"), line("p0", 0, device_id="d0")], allowed_lateness_ms=10 * HOUR)
    keys = [(s["start"], s["session_id"]) for s in doc["sessions"]]
    assert keys == sorted(keys) and len(keys) == 4


# --- dead letters ----------------------------------------------------------------------------------------


def test_every_dead_letter_reason_appears_with_its_line_number_and_event_id():
    lines = [
        line("ok", 0, device_id="d"),                                              # 1
        "not json",                                                                # 2 malformed
        "",                                                                        # 3 blank: skipped, counted in numbering
        line("s1", 1, device_id="d", memberId="42"),                               # 4 schema (unknown field)
        line("n1", 2, member_id=None),                                             # 5 no_identity
        line("f1", 24 * 60 + 30, device_id="d"),                                   # 6 future_timestamp (NOW + 30 min)
        line("v1", 3, "purchase", device_id="d", amount_cents=-5),                 # 7 invalid_value
        "[1, 2]",                                                                  # 8 malformed (not an object)
    ]
    doc = dry_run(lines)
    assert [(d["line"], d["reason"], d["event_id"]) for d in doc["dlq"]] == [
        (2, "malformed", None), (4, "schema", "s1"), (5, "no_identity", "n1"), (6, "future_timestamp", "f1"),
        (7, "invalid_value", "v1"), (8, "malformed", None)]
    assert all(set(d) == {"line", "event_id", "reason", "detail"} and d["detail"] for d in doc["dlq"])
    assert "memberId" in doc["dlq"][1]["detail"]
    assert doc["summary"] == {"read": 7, "valid": 1, "duplicates": 0, "dlq": 6, "late": 0}


def test_now_decides_what_is_a_future_timestamp():
    lines = [line("f1", 24 * 60 + 30, device_id="d")]
    assert dry_run(lines)["summary"]["dlq"] == 1
    later = run_lines(lines, new_dry_run(now_ms=NOW + HOUR)).to_dict()
    assert later["summary"]["dlq"] == 0 and later["summary"]["valid"] == 1


# --- visits -----------------------------------------------------------------------------------------------


def test_a_visit_is_a_visitor_with_dwell_and_signal_and_a_passerby_otherwise():
    doc = dry_run([
        wifi("a1", 0, "associate", -55, mac="mac-a"), wifi("a2", 3, "probe", -58, mac="mac-a"),
        wifi("a3", 6, "disassociate", None, mac="mac-a"),
        wifi("b1", 1, "probe", -85, mac="mac-b"), wifi("b2", 9, "probe", -84, mac="mac-b"),   # long but weak
        wifi("c1", 2, "probe", -50, mac="mac-c", store="S2"),                               # strong but brief
    ])
    visits = {(v["person_id"], v["store_id"]): v for v in doc["visits"]}
    a = visits[("w:" + fake_hash("mac-a"), "S1")]
    assert a == {"person_id": "w:" + fake_hash("mac-a"), "store_id": "S1", "start": format_occurred_at(at(0)),
                 "end": format_occurred_at(at(6)), "dwell_s": 360, "class": "visitor"}
    assert visits[("w:" + fake_hash("mac-b"), "S1")]["class"] == "passerby"
    assert visits[("w:" + fake_hash("mac-b"), "S1")]["dwell_s"] == 480
    assert visits[("w:" + fake_hash("mac-c"), "S2")]["class"] == "passerby"
    assert [v["start"] for v in doc["visits"]] == sorted(v["start"] for v in doc["visits"])


def test_visit_thresholds_come_from_the_settings():
    lines = [wifi("b1", 1, "probe", -85, mac="mac-b"), wifi("b2", 9, "probe", -84, mac="mac-b")]
    assert dry_run(lines)["visits"][0]["class"] == "passerby"
    assert dry_run(lines, visitor_min_rssi_dbm=-90)["visits"][0]["class"] == "visitor"


def test_a_late_check_in_bridging_two_visits_leaves_one_visit():
    doc = dry_run([wifi("a1", 0, rssi=-50), wifi("a2", 20, rssi=-50), wifi("a3", 10, rssi=-50)])
    (visit,) = doc["visits"]
    assert (visit["start"], visit["end"], visit["dwell_s"], visit["class"]) == (
        format_occurred_at(at(0)), format_occurred_at(at(20)), 1200, "visitor")


# --- batching and the text view -------------------------------------------------------------------------


def test_the_result_does_not_depend_on_the_batch_size():
    lines = [line("a", 0, device_id="ipad"), wifi("w1", 1, "associate", -60), line("a", 0, device_id="ipad"),
             line("b", 50, device_id="ipad"), "oops", line("c", 25, device_id="ipad", wifi_mac_hash=fake_hash("mac-a")),
             wifi("w2", 9, "probe", -60), line("d", 55, member_id="42", device_id="ipad"), line("e", 500, device_id="z"),
             line("late", 10, device_id="z")]
    whole = dry_run(lines)
    assert dry_run(lines, batch_lines=1) == whole == dry_run(lines, batch_lines=3)
    assert whole["summary"] == {"read": 10, "valid": 8, "duplicates": 1, "dlq": 1, "late": 1}


def random_history(seed: int, n: int = 3_000) -> list[str]:
    """Members, anonymous devices and MACs that get linked, stores, out-of-order and very late arrivals."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        p = rng.randrange(60)
        minute = rng.uniform(0, 600)
        if rng.random() < 0.05:
            minute -= rng.uniform(60, 180)  # beyond the default hour of lateness, mostly
        ids = {"device_id": f"dev-{p}"} if rng.random() < 0.6 else {"wifi_mac_hash": fake_hash(f"mac-{p}")}
        if rng.random() < 0.15:
            ids.update(member_id=f"m{p // 2}", wifi_mac_hash=fake_hash(f"mac-{p}"))
        if "wifi_mac_hash" in ids and rng.random() < 0.7:
            lines.append(line(f"e{i}", max(minute, 0), "wifi_checkin", store_id=f"S{p % 3}",
                              kind=rng.choice(("probe", "associate", "disassociate")), rssi=rng.randint(-90, -40),
                              **ids))
        else:
            lines.append(line(f"e{i}", max(minute, 0), rng.choice(("browse", "browse", "share")), **ids))
        if rng.random() < 0.02:
            lines.append(lines[-1])  # a redelivery
    return lines


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_valid_event_that_is_not_late_is_in_exactly_one_session(seed):
    lines = random_history(seed)
    doc = dry_run(lines)
    s = doc["summary"]
    assert s["read"] == len(lines) == s["valid"] + s["duplicates"] + s["dlq"] and s["late"] > 0
    in_sessions = [e for session in doc["sessions"] for e in session["event_ids"]]
    assert len(in_sessions) == len(set(in_sessions)) == s["valid"] - s["late"]
    assert len({x["session_id"] for x in doc["sessions"]}) == len(doc["sessions"])
    persons = {p["person_id"] for p in doc["persons"]}
    assert {x["person_id"] for x in doc["sessions"] + doc["visits"]} <= persons
    identifiers = [i for p in doc["persons"] for k in ("member_ids", "device_ids", "wifi_mac_hashes")
                   for i in p[k]]
    assert len(identifiers) == len(set(identifiers))  # each identifier belongs to one person
    assert dry_run(lines, batch_lines=7) == doc


def test_finish_closes_everything_once():
    run = new_dry_run()
    run.feed([(1, line("a", 0))])
    report = run.finish()
    assert len(report.sessions) == 1
    with pytest.raises(RuntimeError):
        run.finish()
    with pytest.raises(RuntimeError):
        run.feed([(2, line("b", 1))])


def test_the_readable_report_names_the_counts_and_the_dead_letters():
    lines = [line("a", 0, device_id="ipad"), line("b", 10, "purchase", member_id="42", device_id="ipad",
                                                  amount_cents=4500, store_id="S1"),
             wifi("w1", 1, "associate", -60), wifi("w2", 8, "probe", -60), "not json", line("a", 0, device_id="ipad")]
    text = format_report(run_lines(lines, new_dry_run()), "events.jsonl")
    assert "dry run of events.jsonl" in text
    assert "read 6 lines: 4 valid, 1 duplicate, 1 dead letter" in text
    assert "dead letters by reason: malformed 1" in text and "line 5" in text
    assert "persons: 2 (1 member, 1 anonymous); 1 identity merge, 0 conflicts" in text
    assert "sessions: 2 (1 online-to-offline), paid revenue 4,500 cents" in text
    assert "  w:6d61632d61000000000… " in text  # long hashed ids are shortened in the text view
    assert "visits: 1 at 1 store: 1 visitor, 0 passersby, capture rate 100.0%" in text
    assert "triggers: 1 fired, 0 suppressed" in text and "share_invite" in text


def test_the_readable_report_ends_with_where_the_time_went_and_the_document_has_no_times():
    lines = [line(f"e{i}", i * 60, device_id=f"d{i % 3}") for i in range(30)] + ["not json"]
    report = run_lines(lines, new_dry_run())
    assert set(report.seconds) == set(STEPS) and all(s >= 0 for s in report.seconds.values())
    assert report.seconds["reading"] > 0 and report.seconds["core"] > 0
    last = format_report(report).splitlines()[-1]
    assert re.fullmatch(r"time: reading \d+\.\d\ds \([\d,]+/s lines\), core \d+\.\d\ds \([\d,]+/s events: "
                        r"identity, sessions, visits\), rules \d+\.\d\ds, report \d+\.\d\ds", last), last
    assert "seconds" not in report.to_dict() and "time" not in report.to_dict()  # the document stays reproducible


def test_a_dry_run_leaves_no_reference_cycles_so_the_command_runs_without_the_cycle_collector():
    """`o2o dry-run` turns the cyclic collector off (pipeline/cli.py): that holds only while a run
    leaves no cyclic garbage. A simulated day with bad lines, late uploads, merges and triggers."""
    records = itertools.islice(Simulation(seed=3, start_ms=T0, mix=Mix(bad_rate=0.01, late_rate=0.02)).records(), 6_000)
    lines = [record.json_line() for record in records]
    gc.collect()
    gc.disable()
    try:
        report = run_lines(lines, new_dry_run(now_ms=T0 + 48 * HOUR), batch_lines=500)
        assert report.summary["dlq"] and report.merges and report.triggers  # the run went everywhere
        del report
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_the_readable_report_shows_the_first_few_and_says_how_many_more():
    lines = [line(f"e{i}", i * 60, device_id=f"d{i}") for i in range(15)] + [f"bad {i}" for i in range(12)]
    text = format_report(run_lines(lines, new_dry_run(allowed_lateness_ms=100 * HOUR)), show=10)
    assert "... and 5 more (--json lists them all)" in text   # sessions
    assert "... and 2 more (--json lists them all)" in text   # dead letters
    assert text.count("  line ") == 10


# --- trigger rules ---------------------------------------------------------------------------------


def test_triggers_and_suppressed_firings_are_listed_with_the_topic_fields():
    doc = dry_run([
        line("b1", 0, sku="sku-7", member_id="42"),
        line("l1", 30, "wifi_checkin", kind="portal_login", store_id="S1", member_id="42", rssi=-50),
        line("p1", 40, "purchase", member_id="42", store_id="S1", amount_cents=5_000),
        line("c1", 50, "complaint", member_id="9", store_id="S2"),
        line("b2", 51, sku="sku-1", member_id="9"),
        line("l2", 60, "wifi_checkin", kind="portal_login", store_id="S2", member_id="9", rssi=-50),
    ])
    by_rule = {t["rule"]: t for t in doc["triggers"]}
    assert sorted(by_rule) == ["browse_then_visit", "complaint_recovery", "share_invite"]
    coupon = by_rule["browse_then_visit"]
    assert set(coupon) == {"trigger_id", "rule", "rule_type", "kind", "person_id", "member_id", "store_id",
                           "event_time", "fired_at", "cause_event_ids", "payload"}
    assert (coupon["person_id"], coupon["store_id"], coupon["payload"]["skus"]) == ("m:42", "S1", ["sku-7"])
    assert coupon["fired_at"] == format_occurred_at(at(30))
    # The share invite was pending at the end of input: it fires at its due time (purchase + 2 h).
    assert by_rule["share_invite"]["fired_at"] == format_occurred_at(at(40) + 2 * HOUR)
    assert [(s["rule"], s["person_id"], s["reason"]) for s in doc["suppressed"]] == [
        ("browse_then_visit", "m:9", "complaint_suppression")]
    assert [t["fired_at"] for t in doc["triggers"]] == sorted(t["fired_at"] for t in doc["triggers"])


def test_a_rules_file_from_the_settings_is_used_and_a_bad_one_is_a_config_error(tmp_path):
    from pipeline.config import ConfigError

    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: alerts\n    type: complaint_recovery\n")
    doc = dry_run([line("c1", 0, "complaint", member_id="9")], rules_file=rules)
    assert [t["rule"] for t in doc["triggers"]] == ["alerts"]
    rules.write_text("rules:\n  - name: x\n    type: no_such_rule\n")
    with pytest.raises(ConfigError, match="no_such_rule"):
        new_dry_run(rules_file=rules)
