"""`o2o simulate` as a user runs it: to a JSONL file, and through the producer SDK to the real broker."""

import json
import os
import subprocess
import sys
from pathlib import Path

from agents.changelog import read_to_end
from pipeline.serde import BATCH_ID_OFFSET, DecodeError, EventCodec, unframe
from pipeline.topics import ingress_topics
from pipeline.validation import Rejection, validate_json_line
from tests.conftest import settings_env

O2O = str(Path(sys.executable).parent / "o2o")
START = "2026-11-22T08:00:00+08:00"


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("O2O_")}


def simulate(env, *args):
    return subprocess.run([O2O, "simulate", *args], env=env, capture_output=True, text=True, timeout=120)


def test_simulate_out_writes_the_same_jsonl_for_the_same_seed_with_bad_and_late_records(tmp_path):
    args = ["--events", "3000", "--seed", "4", "--start", START, "--bad-rate", "0.05", "--late-rate", "0.2",
            "--persons", "300", "--stores", "4", "--json"]
    first = simulate(clean_env(), "--out", str(tmp_path / "a.jsonl"), *args)
    again = simulate(clean_env(), "--out", str(tmp_path / "b.jsonl"), *args)

    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    summary = json.loads(first.stdout)
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert (tmp_path / "b.jsonl").read_text().splitlines() == lines
    assert summary["records"] == len(lines) == 3000
    assert summary["good"] + summary["bad"] == 3000 and summary["bad"] > 50 and summary["late"] > 0
    assert sum(summary["by_type"].values()) == summary["good"]
    rejected = {}
    for line in lines:
        verdict = validate_json_line(line, 1_795_305_600_000 + 86_400_000)
        if isinstance(verdict, Rejection):
            rejected[verdict.reason] = rejected.get(verdict.reason, 0) + 1
    assert rejected == summary["bad_by_reason"]


def test_simulate_out_explains_bad_flags(tmp_path):
    run = simulate(clean_env(), "--out", str(tmp_path / "x.jsonl"), "--duration", "5", "--rate", "0")
    assert run.returncode == 2 and "--duration with --out needs --rate" in run.stderr
    run = simulate(clean_env(), "--out", str(tmp_path / "x.jsonl"), "--bad-rate", "0.9")
    assert run.returncode == 2 and "bad_rate" in run.stderr and "0.9" in run.stderr
    assert "Traceback" not in run.stderr


def test_simulate_produces_good_events_through_the_sdk_and_bad_records_raw(pipeline_settings):
    run = simulate(settings_env(pipeline_settings), "--events", "2000", "--rate", "0", "--bad-rate", "0.05",
                   "--late-rate", "0.1", "--persons", "300", "--stores", "4", "--json")

    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["records"] == 2000 and summary["delivered"] == summary["good"] and summary["failed"] == 0
    codec = EventCodec()
    good, bad_records, by_type = 0, 0, {}
    for event_type, topic in ingress_topics(pipeline_settings).items():
        for message in read_to_end(pipeline_settings, topic):
            try:
                schema_id, _ = unframe(message.value())
            except DecodeError:
                bad_records += 1  # JSON bytes on an Avro topic: dead-lettered as malformed
                continue
            if schema_id % 100 > BATCH_ID_OFFSET:  # the SDK writes batch records
                events = codec.decode(message.value())
                assert all("wifi_mac" not in e and "phone" not in e for e in events), "hashed at the first hop"
                good += len(events)
                by_type[event_type] = by_type.get(event_type, 0) + len(events)
            else:
                bad_records += 1
    assert good == summary["good"] and by_type == summary["by_type"]
    assert bad_records == summary["bad"] > 0
