"""Throughput of `o2o dry-run`: parsing + validation, the pure core, and the whole command.

    .venv/bin/python bench/dry_run_bench.py                     # 1M events
    .venv/bin/python bench/dry_run_bench.py --events 200000 --profile

Generates a JSONL file of canonical-JSON events into a temporary directory (not timed), then times:

(a) ingest: JSON lines -> accepted events: JSON parsing, validation, hashing of raw MACs and phones
    and deduplication (IngestStage.ingest_json_line, one call per line does all four, as in the
    agent: dedup is counted here, not in the core);
(b) core: the accepted events of (a), in batches of 5,000, through identity, sessions and visits.
    Reported twice: JourneyProcessor alone (process + close_all), and the dry run's own core
    (DryRun.process, which also keeps the last version of every session and visit, + finish(),
    which closes everything and builds the sorted output dicts);
(c) the whole `o2o dry-run --json` command on the file (a subprocess: start-up, reading, (a), (b),
    JSON output to a pipe), then the text command, whose last line says where its time went: its
    core (identity, sessions, visits) timed batch by batch as it runs, each batch just parsed.

The file: persons with realistic identifiers (members logged in on the app, anonymous devices,
raw Wi-Fi MACs and phone numbers that ingest hashes), bouts of activity mixing online browsing
with store visits, POS and app purchases, shares and complaints; about 20 % of events are Wi-Fi
probes of passers-by (weak signal, a minute or two); about 0.5 % redelivered lines (duplicates)
and 0.2 % bad lines (malformed, schema, invalid_value, no_identity). Arrival order is event time
plus an upload delay: 90 % on time, 9 % up to 10 min late, 1 % 30 min to 3 h late.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from pipeline.config import load_settings
from pipeline.dry_run import DryRun, numbered_batches
from pipeline.journey import JourneyProcessor

MINUTE = 60_000
DAY_START = 1_795_305_600_000  # 2026-11-22T00:00:00Z (08:00 in Shanghai)
NOW_ISO = "2026-11-25T00:00:00Z"
CST = timezone(timedelta(hours=8))
ONLINE = ("app", "app", "web", "mini_program")
PAGES = ("home", "product", "product", "search", "cart", "campaign")
WIFI_SEQUENCE = ("probe", "probe", "associate", "portal_login")


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, CST).isoformat(timespec="milliseconds")


def mac_of(n: int) -> str:
    h = f"{n:012x}"
    return ":".join(h[i:i + 2] for i in range(0, 12, 2))


class Person:
    __slots__ = ("member_id", "device_id", "mac", "phone", "store")

    def __init__(self, rng: random.Random, index: int, stores: int) -> None:
        is_member = rng.random() < 0.4
        self.member_id = f"M{index:07d}" if is_member else None
        self.device_id = f"dev-{index:07d}" if rng.random() < 0.9 else None
        self.mac = mac_of(0x020000000000 + index) if rng.random() < 0.7 or self.device_id is None else None
        self.phone = f"+86 138{index:08d}" if is_member and rng.random() < 0.6 else None
        self.store = f"S{rng.randrange(stores):03d}"


def event(seq: int, event_type: str, t: int, channel: str, **fields: Any) -> dict[str, Any]:
    # Gateways send epoch ms, apps and POS ISO-8601 with an offset: both forms get parsed.
    occurred = t if channel == "wifi" else iso(t)
    out = {"event_id": f"ev-{seq:09d}", "event_type": event_type, "occurred_at": occurred, "channel": channel}
    out.update((k, v) for k, v in fields.items() if v is not None)
    return out


def burst(rng: random.Random, person: Person, seq: int, t: int) -> list[tuple[int, dict[str, Any]]]:
    """One bout of activity: browsing, maybe a store visit, maybe a purchase / share / complaint."""
    out: list[tuple[int, dict[str, Any]]] = []

    def add(event_type: str, at: int, channel: str, **fields: Any) -> None:
        out.append((at, event(seq + len(out), event_type, at, channel, **fields)))

    logged_in = person.member_id is not None and rng.random() < 0.7
    if person.device_id is not None:
        for _ in range(rng.randint(1, 8)):
            t += rng.randint(10_000, 6 * MINUTE)
            add("browse", t, rng.choice(ONLINE), device_id=person.device_id,
                member_id=person.member_id if logged_in else None, page=rng.choice(PAGES),
                sku=f"sku{rng.randrange(5000)}", category="shoes")
    if person.mac is not None and rng.random() < 0.6:
        checkins = rng.randint(2, 14)
        rssi_base = rng.choice((-85, -75, -65, -55))
        for i in range(checkins):
            t += rng.randint(20_000, 4 * MINUTE)
            kind = "disassociate" if i == checkins - 1 and rng.random() < 0.5 else WIFI_SEQUENCE[min(i, 3)]
            add("wifi_checkin", t, "wifi", wifi_mac=person.mac, store_id=person.store, kind=kind, ap_id="ap1",
                rssi=None if kind == "disassociate" else rssi_base + rng.randint(-8, 8),
                member_id=person.member_id if kind == "portal_login" else None, source_id="gw-" + person.store)
        if rng.random() < 0.35:
            t += rng.randint(MINUTE, 5 * MINUTE)
            anonymous = not (person.member_id or person.phone)
            add("purchase", t, "pos", store_id=person.store, phone=person.phone, member_id=person.member_id,
                wifi_mac=person.mac if anonymous else None, order_id=f"o{seq}", status="paid",
                amount_cents=rng.randint(500, 50_000), currency="CNY",
                items=[{"sku": f"sku{rng.randrange(5000)}", "quantity": 1, "price_cents": 500}])
    elif person.device_id is not None and rng.random() < 0.15:
        t += rng.randint(MINUTE, 5 * MINUTE)
        add("purchase", t, "app", device_id=person.device_id, member_id=person.member_id, order_id=f"o{seq}",
            status=rng.choice(("created", "paid", "paid")), amount_cents=rng.randint(500, 50_000), currency="CNY")
    if rng.random() < 0.12 and person.device_id is not None:
        t += rng.randint(MINUTE, 20 * MINUTE)
        add("share", t, "app", device_id=person.device_id, platform="wechat", target="moments")
    if rng.random() < 0.04:
        t += rng.randint(MINUTE, 60 * MINUTE)
        add("complaint", t, "call_center", phone=person.phone, member_id=person.member_id,
            device_id=person.device_id,
            wifi_mac=person.mac if not (person.phone or person.member_id or person.device_id) else None,
            complaint_id=f"c{seq}", category="service", severity="medium")
    return out


def passerby(rng: random.Random, seq: int, t: int, stores: int) -> list[tuple[int, dict[str, Any]]]:
    """A phone walking past a store: one to three weak probes within two minutes."""
    mac = mac_of(0x060000000000 + rng.randrange(10_000_000))
    store = f"S{rng.randrange(stores):03d}"
    out = []
    for _ in range(rng.randint(1, 3)):
        t += rng.randint(5_000, 60_000)
        out.append((t, event(seq + len(out), "wifi_checkin", t, "wifi", wifi_mac=mac, store_id=store,
                             kind="probe", ap_id="ap1", rssi=rng.randint(-92, -72), source_id="gw-" + store)))
    return out


BAD_LINES = (
    '{"event_id": "bad-%d", "event_type": "browse", "occurred_at": ',                       # malformed
    '{"event_id": "bad-%d", "event_type": "browse", "occurred_at": 1795305600000, "channel": "app", '
    '"memberId": "M1"}',                                                                      # schema
    '{"event_id": "bad-%d", "event_type": "wifi_checkin", "occurred_at": 1795305600000, "channel": "wifi", '
    '"wifi_mac": "02:00:00:00:00:01", "store_id": "S001", "kind": "probe", "rssi": 20}',     # invalid_value
    '{"event_id": "bad-%d", "event_type": "share", "occurred_at": 1795305600000, "channel": "app", '
    '"platform": "wechat"}',                                                                  # no_identity
)


def generate(path: Path, n_events: int, seed: int = 7, hours: int = 14, stores: int = 200) -> dict[str, int]:
    """Write about `n_events` lines to `path` in arrival order; returns the mix."""
    rng = random.Random(seed)
    persons = [Person(rng, i, stores) for i in range(max(1, n_events // 25))]
    timed: list[tuple[int, dict[str, Any]]] = []
    n_passerby = 0
    while len(timed) < n_events:
        start = DAY_START + rng.randrange(hours * 60 * MINUTE)
        if n_passerby < 0.2 * len(timed):  # keep passers-by at a fifth of all events
            new = passerby(rng, len(timed), start, stores)
            n_passerby += len(new)
        else:
            new = burst(rng, rng.choice(persons), len(timed), start)
        timed.extend(new)
    del timed[n_events:]

    def arrival(t: int) -> int:
        roll = rng.random()
        if roll < 0.90:
            return t + rng.randrange(2_000)
        if roll < 0.99:
            return t + rng.randrange(10 * MINUTE)
        return t + rng.randrange(30 * MINUTE, 180 * MINUTE)

    keyed = sorted((arrival(t), i) for i, (t, _) in enumerate(timed))
    mix: dict[str, int] = {}
    lines = 0
    with open(path, "w") as out:
        for n, (_, i) in enumerate(keyed):
            ev = timed[i][1]
            line = json.dumps(ev, separators=(",", ":")) + "\n"
            out.write(line)
            mix[ev["event_type"]] = mix.get(ev["event_type"], 0) + 1
            lines += 1
            roll = rng.random()
            if roll < 0.005:
                out.write(line)  # a redelivery: same event_id, seconds later
                mix["(duplicate line)"] = mix.get("(duplicate line)", 0) + 1
                lines += 1
            elif roll < 0.007:
                out.write(BAD_LINES[n % len(BAD_LINES)] % n + "\n")
                mix["(bad line)"] = mix.get("(bad line)", 0) + 1
                lines += 1
    mix["(passerby probes)"] = n_passerby
    mix["(lines)"] = lines
    return mix


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>11,.0f} events/s  ({seconds:6.2f} s for {n:,})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--file", type=Path, help="use this JSONL file instead of generating one")
    parser.add_argument("--keep", action="store_true", help="keep the generated file (its path is printed)")
    parser.add_argument("--profile", action="store_true", help="cProfile the core (b) and print the top costs")
    parser.add_argument("--skip-command", action="store_true", help="do not time the whole command (c)")
    args = parser.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="o2o-dry-run-bench-")
    path = args.file or Path(tmp.name) / "events.jsonl"
    if args.file is None:
        began = time.perf_counter()
        mix = generate(path, args.events)
        print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - began:.1f}s; "
              f"mix {mix}", flush=True)

    settings = load_settings(None)
    now_ms = int(datetime.fromisoformat(NOW_ISO).timestamp() * 1000)
    with open(path, "rb") as source:
        batches = list(numbered_batches(source.readlines()))
    n_lines = sum(len(b) for b in batches)

    gc.disable()  # as the command runs (pipeline/cli.py): a dry run makes no reference cycles

    # (a) JSON lines -> accepted events (parse, validate, hash, dedup).
    run = DryRun.from_settings(settings, now_ms)
    began = time.perf_counter()
    accepted = [run.ingest(batch) for batch in batches]
    ingest_s = time.perf_counter() - began
    n_accepted = run.counts["valid"]
    del batches

    # (b1) JourneyProcessor alone.
    processor = JourneyProcessor(settings.journey_policy())
    began = time.perf_counter()
    for events in accepted:
        processor.process(events)
    processor.close_all()
    journey_s = time.perf_counter() - began
    del processor

    # (b2) The dry run's core: process (journey + keeping final versions), then finish.
    profiler = cProfile.Profile() if args.profile else None
    began = time.perf_counter()
    if profiler:
        profiler.enable()
    for events in accepted:
        run.process(events)
    processed = time.perf_counter()
    report = run.finish()
    if profiler:
        profiler.disable()
    finished = time.perf_counter()
    process_s, finish_s = processed - began, finished - processed

    print(f"\nlines {n_lines:,}: {report.summary}; persons {len(report.persons):,}, "
          f"sessions {len(report.sessions):,}, visits {len(report.visits):,}, merges {report.merges:,}")
    print(f"(a) parse + validate + hash + dedup  {rate(n_lines, ingest_s)}")
    print(f"(b) core: JourneyProcessor alone     {rate(n_accepted, journey_s)}")
    print(f"    core: dry run process            {rate(n_accepted, process_s)}")
    print(f"    core: dry run process + finish   {rate(n_accepted, process_s + finish_s)}  "
          f"(finish: close all, build output {finish_s:.2f} s)")
    if profiler:
        print("\ncProfile of (b), dry run process + finish, by own time:")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)

    if not args.skip_command:
        del accepted, report, run
        o2o = str(Path(sys.executable).parent / "o2o")
        env = {k: v for k, v in os.environ.items() if not k.startswith("O2O_")}
        for flags in (["--json"], []):
            began = time.perf_counter()
            done = subprocess.run([o2o, "dry-run", "--events", str(path), "--now", NOW_ISO, *flags],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            elapsed = time.perf_counter() - began
            if done.returncode != 0:
                sys.exit(f"o2o dry-run failed: {done.stderr}")
            label = "o2o dry-run --json (whole command) " if flags else "o2o dry-run (text)              "
            print(f"(c) {label}{rate(n_lines, elapsed)}")
            if not flags:  # the command's own account: the core timed batch by batch, as it reads them
                print(f"    its last line: {done.stdout.rstrip().splitlines()[-1]}")
    if args.keep and args.file is None:
        kept = Path(tempfile.gettempdir()) / "o2o-dry-run-bench.jsonl"
        path.replace(kept)
        print(f"kept the file as {kept}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
