"""Micro-benchmark of the event contract's pure core: Avro encode/decode, validation and dedup.

    python bench/serde_bench.py [--events 20000] [--batch 100]

Prints events per second for one event per record and for batched records (events grouped by type,
`--batch` per record), over a realistic mix of the five event types, plus validate+dedup of the
same events as canonical-JSON-ish dicts. One process, one core; no Kafka.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any, Callable

from pipeline.dedup import Deduplicator
from pipeline.privacy import IdentifierHasher
from pipeline.serde import EventCodec
from pipeline.validation import Rejection, validate

NOW_MS = 1_795_312_800_000
MIX = {"wifi_checkin": 0.50, "browse": 0.35, "purchase": 0.08, "share": 0.04, "complaint": 0.03}


def make_raw_event(rng: random.Random, index: int) -> dict[str, Any]:
    """One input event as a producer would send it (raw MAC for Wi-Fi, ISO time for some)."""
    event_type = rng.choices(list(MIX), weights=list(MIX.values()))[0]
    member = f"m{rng.randrange(50_000)}" if rng.random() < 0.6 else None
    base: dict[str, Any] = {
        "event_type": event_type,
        "event_id": f"{event_type[:2]}-{index:010d}",
        "occurred_at": NOW_MS - rng.randrange(3_600_000),
        "store_id": f"store-{rng.randrange(200):03d}",
        "properties": {"app_version": "5.2.1"} if rng.random() < 0.3 else {},
    }
    if event_type == "wifi_checkin":
        mac = ":".join(f"{rng.randrange(256):02x}" for _ in range(6))
        base.update(channel="wifi", source_id=f"gw-{rng.randrange(400)}", wifi_mac=mac,
                    kind=rng.choice(["probe", "associate", "portal_login", "disassociate"]),
                    ap_id=f"ap-{rng.randrange(20)}", rssi=-rng.randrange(30, 95))
        return base
    base.update(channel=rng.choice(["app", "web", "mini_program"]), member_id=member or f"m{index % 977}",
                device_id=f"dev-{rng.randrange(100_000)}")
    if event_type == "browse":
        base.update(page=f"/product/{rng.randrange(5000)}", sku=f"sku-{rng.randrange(5000)}", category="shoes")
    elif event_type == "purchase":
        items = [
            {"sku": f"sku-{rng.randrange(5000)}", "quantity": rng.randrange(1, 4),
             "price_cents": rng.randrange(100, 50_000)}
            for _ in range(rng.randrange(1, 4))
        ]
        base.update(order_id=f"o-{index}", status=rng.choice(["created", "paid"]), currency="CNY",
                    amount_cents=sum(i["quantity"] * i["price_cents"] for i in items), items=items)
    elif event_type == "share":
        base.update(platform=rng.choice(["wechat", "weibo", "douyin"]), target=f"sku-{rng.randrange(5000)}")
    else:
        base.update(category="service", severity=rng.choice(["low", "medium", "high"]), order_id=f"o-{index}")
    return base


def rate(label: str, events: int, run: Callable[[], Any], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    per_second = events / best
    print(f"{label:<44} {per_second:>12,.0f} events/s")
    return per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()

    rng = random.Random(7)
    raws = [make_raw_event(rng, i) for i in range(args.events)]
    hasher = IdentifierHasher(b"bench-secret")
    events = []
    for raw in raws:
        event = validate(raw, NOW_MS)
        assert not isinstance(event, Rejection), event
        hasher.hash_identifiers(event)
        events.append(event)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_type.setdefault(event["event_type"], []).append(event)
    batches = [group[i : i + args.batch] for group in by_type.values() for i in range(0, len(group), args.batch)]

    codec = EventCodec()
    singles = [codec.encode(event) for event in events]
    batched = [codec.encode_batch(batch) for batch in batches]
    n = len(events)
    print(f"{n} events, mix {MIX}; {len(batched)} batch records of up to {args.batch}")
    print(f"bytes/event: single {sum(map(len, singles)) / n:.1f}, batched {sum(map(len, batched)) / n:.1f}")
    rate("encode, one event per record", n, lambda: [codec.encode(e) for e in events])
    rate("decode, one event per record", n, lambda: [codec.decode(v) for v in singles])
    rate(f"encode, batches of {args.batch}", n, lambda: [codec.encode_batch(b) for b in batches])
    rate(f"decode, batches of {args.batch}", n, lambda: [codec.decode(v) for v in batched])
    accepted = [codec.encode_accepted(b) for b in batches]
    print(f"bytes/event: accepted (JSON) {sum(map(len, accepted)) / n:.1f}")
    rate(f"encode accepted (JSON), batches of {args.batch}", n, lambda: [codec.encode_accepted(b) for b in batches])
    rate(f"decode accepted (JSON), batches of {args.batch}", n, lambda: [codec.decode_accepted(v) for v in accepted])
    rate("validate (dict in, normalised dict out)", n, lambda: [validate(r, NOW_MS) for r in raws])
    rate("validate + hash identifiers + dedup", n, lambda: _ingest(raws, IdentifierHasher(b"bench-secret")))


def _ingest(raws: list[dict[str, Any]], hasher: IdentifierHasher) -> int:
    dedup = Deduplicator()
    kept = 0
    for raw in raws:
        event = validate(raw, NOW_MS)
        if type(event) is dict:
            hasher.hash_identifiers(event)
            if not dedup.is_duplicate(event["event_id"], event["occurred_at"]):
                kept += 1
    return kept


if __name__ == "__main__":
    main()
