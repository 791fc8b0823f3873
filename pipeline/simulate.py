"""Synthetic O2O traffic: members and anonymous phones browsing online, walking into stores, buying,
sharing and complaining; passers-by whose phones probe the store Wi-Fi. Deterministic per seed.

The seed of `o2o simulate`: events come out in canonical JSON form (raw MACs included, as a
gateway sends them), so they go through the same validation and hashing as real input.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterator

MINUTE = 60_000


@dataclass(frozen=True)
class Mix:
    persons: int = 200
    stores: int = 5
    member_share: float = 0.6        # persons with a member id (the rest stay anonymous devices)
    visit_share: float = 0.5         # journeys that walk into a store after browsing
    buy_share: float = 0.6           # visitors who pay
    share_share: float = 0.3         # buyers who share
    complaint_share: float = 0.05    # buyers who complain
    passersby_per_store: int = 10


def mac_of(rng: random.Random) -> str:
    return ":".join(f"{rng.randrange(256):02x}" for _ in range(6))


def generate(seed: int, start_ms: int, mix: Mix = Mix()) -> list[dict[str, Any]]:
    """Events of one simulated morning, sorted by event time."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for person in range(mix.persons):
        events.extend(journey(rng, person, start_ms + rng.randrange(180) * MINUTE, mix))
    for store in range(mix.stores):
        for n in range(mix.passersby_per_store):
            at = start_ms + rng.randrange(240) * MINUTE
            events.append(wifi(f"px-{store}-{n}", at, mac_of(rng), f"store-{store}", "probe", rng.randrange(-95, -75)))
    events.sort(key=lambda e: e["occurred_at"])
    return events


def journey(rng: random.Random, person: int, at: int, mix: Mix) -> Iterator[dict[str, Any]]:
    member = f"member-{person}" if rng.random() < mix.member_share else None
    device, mac, store = f"phone-{person}", mac_of(rng), f"store-{rng.randrange(mix.stores)}"
    prefix = f"p{person}"
    skus = [f"sku-{rng.randrange(40)}" for _ in range(rng.randint(1, 4))]
    for n, sku in enumerate(skus):
        yield event(f"{prefix}-b{n}", "browse", at + n * 2 * MINUTE, "app", device_id=device, member_id=member,
                    sku=sku, page=f"/product/{sku}", campaign=rng.choice([None, "winter-sale"]))
    if rng.random() >= mix.visit_share:
        return
    arrive = at + rng.randint(20, 90) * MINUTE
    yield wifi(f"{prefix}-w0", arrive, mac, store, "associate", rng.randrange(-68, -45))
    # The portal login carries the member id (or the app's device id): it links MAC and person.
    login = {"member_id": member} if member else {"device_id": device}
    yield wifi(f"{prefix}-w1", arrive + MINUTE, mac, store, "portal_login", rng.randrange(-65, -45), **login)
    leave = arrive + rng.randint(6, 40) * MINUTE
    # Gateways report an associated client every few minutes while it stays.
    for n, seen in enumerate(range(arrive + 5 * MINUTE, leave, 5 * MINUTE)):
        yield wifi(f"{prefix}-p{n}", seen, mac, store, "associate", rng.randrange(-68, -45))
    if rng.random() < mix.buy_share:
        amount = rng.randrange(1_000, 50_000)
        order = f"order-{person}"
        yield event(f"{prefix}-o", "purchase", leave - MINUTE, "pos", store_id=store, device_id=device,
                    member_id=member, order_id=order, status="paid", amount_cents=amount, currency="CNY",
                    items=[{"sku": skus[0], "quantity": 1, "price_cents": amount}])
        if rng.random() < mix.share_share:
            yield event(f"{prefix}-s", "share", leave + 30 * MINUTE, "app", device_id=device, member_id=member,
                        platform=rng.choice(["wechat", "weibo", "douyin"]), target=skus[0])
        elif rng.random() < mix.complaint_share:
            yield event(f"{prefix}-c", "complaint", leave + 60 * MINUTE, "call_center", member_id=member,
                        device_id=device, store_id=store, category="service", severity="high", order_id=order)
    yield wifi(f"{prefix}-w2", leave, mac, store, "disassociate", None)


def event(event_id: str, event_type: str, at: int, channel: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": event_type, "occurred_at": at, "channel": channel,
            **{k: v for k, v in fields.items() if v is not None}}


def wifi(event_id: str, at: int, mac: str, store: str, kind: str, rssi: int | None, **fields: Any) -> dict[str, Any]:
    return event(event_id, "wifi_checkin", at, "wifi", wifi_mac=mac, store_id=store, kind=kind, rssi=rssi,
                 source_id=f"gw-{store}", ap_id=f"{store}-ap1", **fields)
