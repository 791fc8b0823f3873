"""Synthetic O2O traffic, deterministic per seed: the generator behind `o2o simulate`, the demo and the benches.

A population of persons (members and anonymous app devices, some without the app) and stores with
Wi-Fi gateways. Simulated time runs in *rounds* of `Mix.round_minutes`; in each round every active
person makes one journey, starting at a random minute of the round:

    browse online (app / web / mini-program)  -> maybe opt out of marketing on the privacy page
      -> no visit: maybe an online order, maybe a share                      ("browse without visit")
      -> visit a store: probe, associate, portal login, an associate every 5 min, disassociate
           -> pay at the POS -> share, or complain; sometimes a refund later
    walk in without browsing (persons without the app always do)            ("walk-in")

Around the journeys each store's gateway sees staff devices associated all round ("all day", strong
signal) and passers-by outside whose phones only probe (weak signal), a few briefly auto-joining.

Records come out in *arrival order*. Two deliberate imperfections, both off by default:
- `late_rate`: that share of gateway (wifi_checkin) events is uploaded late, `late_min_s..late_max_s`
  after it happened, so it arrives among newer events (`Record.late`);
- `bad_rate`: that share of all records is broken the way real producers break them: truncated
  JSON, a misspelt field, an unknown enum symbol, no identifier, epoch seconds for milliseconds, a
  clock far in the future, a negative amount or impossible RSSI. `Record.bad` names the reason code
  `pipeline.validation` rejects it with.

Events are canonical JSON objects (int epoch-ms `occurred_at`, raw `wifi_mac` and `phone` as a
gateway or POS sends them), so they take the same validation and hashing as real input.
Everything is a pure function of (seed, start_ms, mix): no clock, no I/O, no globals.

    sim = Simulation(seed=1, start_ms=1_795_312_800_000, mix=Mix(persons=500, bad_rate=0.01))
    for record in itertools.islice(sim.records(), 10_000): ...   # an endless stream, in rounds
    generate(1, start_ms)                                        # one round, good events only
"""

from __future__ import annotations

import heapq
import json
import random
from dataclasses import dataclass, field, fields
from typing import Any, Iterator

from pipeline.events import EVENT_TYPES

MINUTE = 60_000
SECOND = 1_000
DAY = 86_400_000

# Reason codes of pipeline.validation, repeated here as data (the tests check they match).
MALFORMED, SCHEMA, NO_IDENTITY, FUTURE_TIMESTAMP, INVALID_VALUE = (
    "malformed", "schema", "no_identity", "future_timestamp", "invalid_value")
BROWSE_CHANNELS = ("app", "app", "app", "web", "mini_program")
COMPLAINT_CATEGORIES = ("product_quality", "service", "delivery", "price", "other")
PAGES = ("home", "product", "product", "product", "search", "cart", "campaign")


@dataclass(frozen=True)
class Mix:
    """What the simulated traffic is made of. Shares are probabilities in 0..1."""

    persons: int = 200               # population; each active person makes one journey per round
    stores: int = 5
    member_share: float = 0.6        # persons with a member id (the rest are anonymous devices)
    app_share: float = 0.85          # persons with the app installed (the others only ever walk in)
    active_share: float = 1.0        # persons who make a journey in a given round
    walk_in_share: float = 0.15      # journeys of app users that walk in without browsing first
    visit_share: float = 0.5         # browsing journeys that go on to visit a store
    buy_share: float = 0.6           # store visitors who pay at the POS
    online_buy_share: float = 0.1    # browsing journeys without a visit that order online
    share_share: float = 0.3         # buyers who share
    complaint_share: float = 0.05    # buyers (who did not share) who complain
    refund_share: float = 0.05       # paid orders refunded later
    opt_out_share: float = 0.02      # members' journeys in which they opt out of marketing (for good)
    passersby_per_store: int = 10    # per round; their phones probe the gateway from outside
    staff_per_store: int = 2         # staff devices associated all round
    round_minutes: int = 90          # journeys start within a round; they end at most ~3.5 h later
    bad_rate: float = 0.0            # share of all records that are deliberately invalid
    late_rate: float = 0.0           # share of wifi_checkin events a gateway uploads late
    late_min_s: int = 300            # how late a late upload is: at least ...
    late_max_s: int = 2_700          # ... and at most (the default allowed lateness is 60 min)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "float" and not 0.0 <= value <= 1.0:
                raise ValueError(f"Mix.{f.name} must be between 0 and 1, got {value!r}")
        if self.bad_rate > 0.5:
            raise ValueError(f"Mix.bad_rate must be at most 0.5 (half the records broken), got {self.bad_rate!r}")
        for name in ("persons", "stores", "round_minutes"):
            if getattr(self, name) < 1:
                raise ValueError(f"Mix.{name} must be at least 1, got {getattr(self, name)!r}")
        for name in ("passersby_per_store", "staff_per_store", "late_min_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"Mix.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.late_max_s < self.late_min_s:
            raise ValueError(f"Mix.late_max_s ({self.late_max_s}) must be >= late_min_s ({self.late_min_s})")


# Longest a journey runs after its start (browsing 13 min, 90 to the store, 2 to associate, 40 dwell,
# 60 to a refund): with the round, how far event time runs ahead of a round's start.
JOURNEY_MAX_MS = 205 * MINUTE


@dataclass(frozen=True, slots=True)
class Record:
    """One record of the stream: a canonical-JSON event (a dict) or, when malformed, a text line."""

    arrival_ms: int                  # when the producer sends it (late uploads: well after occurred_at)
    value: dict[str, Any] | str
    late: bool = False
    bad: str | None = None           # the validation reason code it must be rejected with

    @property
    def event_type(self) -> str | None:
        value = self.value
        if type(value) is dict:
            event_type = value.get("event_type")
            return event_type if event_type in EVENT_TYPES else None
        return self.bad_event_type

    @property
    def bad_event_type(self) -> str | None:
        """For a malformed line: the type of the event it was cut from (the topic it would go to)."""
        value = self.value
        if type(value) is str:
            for event_type in EVENT_TYPES:
                if f'"event_type": "{event_type}"' in value:
                    return event_type
        return None

    def json_line(self) -> str:
        value = self.value
        return value if type(value) is str else json.dumps(value, separators=(", ", ": "))


@dataclass(slots=True)
class Person:
    index: int
    member_id: str | None
    device_id: str | None      # the app's device id; None without the app
    mac: str                   # the phone's Wi-Fi MAC, raw (hashed at the first hop)
    phone: str | None          # known to the POS (members, and anonymous buyers asking for e-receipts)
    home_store: int
    opted_out: bool = False    # withdrew marketing consent; every later event says so


@dataclass(slots=True)
class _Round:
    """Mutable scratch of one round: where its records go."""

    rng: random.Random
    heap: list
    seq: int = 0
    extra: list = field(default_factory=list)


def mac_of(rng: random.Random) -> str:
    return ":".join(f"{rng.randrange(256):02x}" for _ in range(6))


class Simulation:
    def __init__(self, seed: int, start_ms: int, mix: Mix = Mix()) -> None:
        self.seed = seed
        self.start_ms = start_ms
        self.mix = mix
        self.round_ms = mix.round_minutes * MINUTE
        rng = random.Random(f"{seed}:population")
        self.persons = [self._person(rng, i) for i in range(mix.persons)]
        self.staff = [[mac_of(rng) for _ in range(mix.staff_per_store)] for _ in range(mix.stores)]
        # Keep inserted bad records at `bad_rate` of ALL records: one per good event with this chance.
        self._bad_chance = mix.bad_rate / (1.0 - mix.bad_rate) if mix.bad_rate else 0.0

    def _person(self, rng: random.Random, index: int) -> Person:
        mix = self.mix
        member = f"member-{index}" if rng.random() < mix.member_share else None
        device = f"phone-{index}" if rng.random() < mix.app_share else None
        phone = f"+86 139 {index // 10_000 % 10_000:04d} {index % 10_000:04d}" if member or rng.random() < 0.3 else None
        return Person(index, member, device, mac_of(rng), phone, rng.randrange(mix.stores))

    # --- the stream ------------------------------------------------------------------------------

    def records(self, rounds: int | None = None) -> Iterator[Record]:
        """Records in arrival order; `rounds` bounds simulated time (None: endless)."""
        heap: list = []
        seq = 0
        r = 0
        while rounds is None or r < rounds:
            state = _Round(random.Random(f"{self.seed}:round:{r}"), heap, seq)
            self._fill_round(state, r)
            seq = state.seq
            next_round = self.start_ms + (r + 1) * self.round_ms
            r += 1
            # Every event of later rounds arrives at or after `next_round`: what is before is final.
            last = rounds is not None and r >= rounds
            while heap and (last or heap[0][0] < next_round):
                yield heapq.heappop(heap)[2]

    def _fill_round(self, state: _Round, r: int) -> None:
        mix, rng = self.mix, state.rng
        t0 = self.start_ms + r * self.round_ms
        for person in self.persons:
            if mix.active_share < 1.0 and rng.random() >= mix.active_share:
                continue
            at = t0 + rng.randrange(self.round_ms // SECOND) * SECOND
            self._emit(state, self._journey(rng, person, f"r{r}p{person.index}", at))
        for store in range(mix.stores):
            self._emit(state, self._staff(rng, store, r, t0))
            self._emit(state, self._passersby(rng, store, r, t0))

    def _emit(self, state: _Round, events: list[dict[str, Any]]) -> None:
        mix, rng, heap = self.mix, state.rng, state.heap
        for event in events:
            arrival, late = event["occurred_at"], False
            if mix.late_rate and event["event_type"] == "wifi_checkin" and rng.random() < mix.late_rate:
                arrival += rng.randint(mix.late_min_s, mix.late_max_s) * SECOND
                late = True
            heapq.heappush(heap, (arrival, state.seq, Record(arrival, event, late)))
            state.seq += 1
            if self._bad_chance and rng.random() < self._bad_chance:
                value, reason = spoil(rng, event)
                heapq.heappush(heap, (arrival, state.seq, Record(arrival, value, False, reason)))
                state.seq += 1

    # --- journeys ----------------------------------------------------------------------------------

    def _journey(self, rng: random.Random, p: Person, jid: str, at: int) -> list[dict[str, Any]]:
        mix = self.mix
        out: list[dict[str, Any]] = []
        skus = [f"sku-{rng.randrange(400)}" for _ in range(rng.randint(1, 4))]
        walk_in = p.device_id is None or rng.random() < mix.walk_in_share
        if walk_in:
            arrive = at
        else:
            logged_in = p.member_id if rng.random() < 0.8 else None
            channel = rng.choice(BROWSE_CHANNELS)
            t = at
            if p.member_id and not p.opted_out and rng.random() < mix.opt_out_share:
                p.opted_out = True
                out.append(event(f"{jid}-optout", "browse", t, channel, device_id=p.device_id,
                                 member_id=p.member_id, page="/account/privacy", consent_marketing=False,
                                 properties={"action": "marketing_opt_out"}))
                t += rng.randint(10, 60) * SECOND
            for n, sku in enumerate(skus):
                out.append(event(f"{jid}-b{n}", "browse", t, channel, device_id=p.device_id,
                                 member_id=logged_in, page=f"/{rng.choice(PAGES)}/{sku}", sku=sku,
                                 category=f"cat-{int(sku[4:]) % 12}", campaign=rng.choice((None, None, "winter-sale")),
                                 consent_marketing=self._consent(p)))
                t += rng.randint(20, 180) * SECOND
            if rng.random() >= mix.visit_share:
                if rng.random() < mix.online_buy_share:
                    order = self._order(rng, jid, skus, t, channel, None, p, out)
                    self._after(rng, p, jid, order, t, None, out)
                return out
            arrive = t + rng.randint(20, 90) * MINUTE
        store = p.home_store if rng.random() < 0.8 else rng.randrange(mix.stores)
        sid = f"store-{store}"
        # Approaching: the phone probes; inside it joins the Wi-Fi, a member logs in on the portal.
        out.append(wifi(f"{jid}-w0", arrive, p.mac, sid, "probe", rng.randint(-84, -70), rng))
        t = arrive + rng.randint(20, 90) * SECOND
        out.append(wifi(f"{jid}-w1", t, p.mac, sid, "associate", rng.randint(-68, -45), rng))
        if p.member_id or (p.device_id and rng.random() < 0.5):
            login = {"member_id": p.member_id} if p.member_id else {"device_id": p.device_id}
            out.append(wifi(f"{jid}-w2", t + 30 * SECOND, p.mac, sid, "portal_login", rng.randint(-65, -45), rng,
                            consent_marketing=self._consent(p), **login))
        leave = t + rng.randint(6, 40) * MINUTE
        for n, seen in enumerate(range(t + 5 * MINUTE, leave, 5 * MINUTE)):
            out.append(wifi(f"{jid}-a{n}", seen, p.mac, sid, "associate", rng.randint(-68, -45), rng))
        order = None
        if rng.random() < mix.buy_share and (p.member_id or p.phone or p.device_id):
            order = self._order(rng, jid, skus, leave - rng.randint(1, 4) * MINUTE, "pos", sid, p, out)
        out.append(wifi(f"{jid}-w9", leave, p.mac, sid, "disassociate", None, rng))
        if order:
            self._after(rng, p, jid, order, leave, sid, out)
        return out

    def _consent(self, p: Person) -> bool | None:
        return False if p.opted_out else None

    def _order(self, rng, jid, skus, t, channel, store_id, p: Person, out) -> dict[str, Any]:
        items = [{"sku": sku, "quantity": rng.randint(1, 3), "price_cents": rng.randrange(500, 30_000)}
                 for sku in skus[: rng.randint(1, len(skus))]]
        amount = sum(i["quantity"] * i["price_cents"] for i in items)
        # The POS knows the member card, else the phone for an e-receipt, else the app's coupon code.
        ident = ({"member_id": p.member_id} if p.member_id else {"phone": p.phone} if p.phone
                 else {"device_id": p.device_id})
        if channel != "pos":
            ident = {"member_id": p.member_id, "device_id": p.device_id}
        order = event(f"{jid}-o", "purchase", t, channel, store_id=store_id, order_id=f"order-{jid}",
                      status="paid", amount_cents=amount, currency="CNY", items=items,
                      source_id=f"pos-{store_id}" if store_id else None, consent_marketing=self._consent(p), **ident)
        out.append(order)
        return order

    def _after(self, rng, p: Person, jid: str, order: dict[str, Any], t: int, store_id, out) -> None:
        """What follows a paid order: a share or a complaint, sometimes a refund."""
        mix = self.mix
        if rng.random() < mix.share_share and p.device_id:
            out.append(event(f"{jid}-s", "share", t + rng.randint(5, 30) * MINUTE, "app", device_id=p.device_id,
                             member_id=p.member_id, platform=rng.choice(("wechat", "wechat", "weibo", "douyin", "qq")),
                             target=order["items"][0]["sku"], consent_marketing=self._consent(p)))
        elif rng.random() < mix.complaint_share and (p.member_id or p.phone or p.device_id):
            ident = {"member_id": p.member_id} if p.member_id else {"phone": p.phone} if p.phone else {
                "device_id": p.device_id}
            out.append(event(f"{jid}-c", "complaint", t + rng.randint(10, 45) * MINUTE, "call_center",
                             store_id=store_id, complaint_id=f"cmp-{jid}", category=rng.choice(COMPLAINT_CATEGORIES),
                             severity=rng.choice(("low", "medium", "high")), order_id=order["order_id"], **ident))
        if rng.random() < mix.refund_share:
            refund = {**order, "event_id": f"{jid}-rf", "status": "refunded",
                      "occurred_at": t + rng.randint(20, 60) * MINUTE}
            out.append(refund)

    # --- the stores' own background -------------------------------------------------------------------

    def _staff(self, rng: random.Random, store: int, r: int, t0: int) -> list[dict[str, Any]]:
        sid, out = f"store-{store}", []
        for k, mac in enumerate(self.staff[store]):
            for n, seen in enumerate(range(t0 + rng.randrange(60) * SECOND, t0 + self.round_ms, 5 * MINUTE)):
                out.append(wifi(f"r{r}s{store}-{k}-{n}", seen, mac, sid, "associate", rng.randint(-55, -35), rng))
        return out

    def _passersby(self, rng: random.Random, store: int, r: int, t0: int) -> list[dict[str, Any]]:
        sid, out = f"store-{store}", []
        for n in range(self.mix.passersby_per_store):
            mac, at = mac_of(rng), t0 + rng.randrange(self.round_ms // SECOND) * SECOND
            for k in range(rng.randint(1, 3)):
                out.append(wifi(f"r{r}x{store}-{n}-{k}", at + k * 20 * SECOND, mac, sid, "probe",
                                rng.randint(-95, -75), rng))
            if rng.random() < 0.2:  # auto-joins the open network for a moment while walking by
                out.append(wifi(f"r{r}x{store}-{n}-j", at + MINUTE, mac, sid, "associate", rng.randint(-82, -72), rng))
                out.append(wifi(f"r{r}x{store}-{n}-l", at + 2 * MINUTE, mac, sid, "disassociate", None, rng))
        return out


def generate(seed: int, start_ms: int, mix: Mix = Mix()) -> list[dict[str, Any]]:
    """Events of one simulated round (with the default mix: good events only), in arrival order.

    With the default round every event lies within `round_minutes + JOURNEY_MAX_MS` (under 5 h) of
    `start_ms`, so a start 5 h in the past produces no future timestamps.
    """
    return [record.value for record in Simulation(seed, start_ms, mix).records(rounds=1)]  # type: ignore[misc]


def round_span_ms(mix: Mix) -> int:
    """How far past its round's start a round's events (including late arrivals) may lie."""
    return mix.round_minutes * MINUTE + JOURNEY_MAX_MS + mix.late_max_s * SECOND


def event(event_id: str, event_type: str, at: int, channel: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": event_type, "occurred_at": at, "channel": channel,
            **{k: v for k, v in fields.items() if v is not None}}


def wifi(event_id: str, at: int, mac: str, store: str, kind: str, rssi: int | None, rng: random.Random,
         **fields: Any) -> dict[str, Any]:
    return event(event_id, "wifi_checkin", at, "wifi", source_id=f"gw-{store}", wifi_mac=mac, store_id=store,
                 kind=kind, ap_id=f"{store}-ap{rng.randint(1, 3)}", rssi=rssi, **fields)


# --- deliberately bad records -------------------------------------------------------------------------

IDENTIFIER_KEYS = ("member_id", "device_id", "wifi_mac", "phone", "wifi_mac_hash", "phone_hash")


def spoil(rng: random.Random, good: dict[str, Any]) -> tuple[dict[str, Any] | str, str]:
    """A broken copy of `good` (new event id) and the reason code validation must reject it with."""
    bad = {**good, "event_id": good["event_id"] + "-bad"}
    kind = rng.randrange(7)
    if kind == 0:  # cut off mid-upload
        text = json.dumps(bad, separators=(", ", ": "))
        return text[: rng.randint(len(text) // 3, len(text) - 2)], MALFORMED
    if kind == 1:  # camelCase from a hand-written producer
        bad.pop("member_id", None)
        bad["memberId"] = good.get("member_id") or "m-unknown"
        return bad, SCHEMA
    if kind == 2:  # a channel the contract does not list
        bad["channel"] = "kiosk"
        return bad, SCHEMA
    if kind == 3:  # lost every identifier
        for key in IDENTIFIER_KEYS:
            bad.pop(key, None)
        return bad, NO_IDENTITY
    if kind == 4:  # epoch seconds instead of milliseconds
        bad["occurred_at"] = good["occurred_at"] // 1000
        return bad, INVALID_VALUE
    if kind == 5:  # a device clock set a year ahead
        bad["occurred_at"] = good["occurred_at"] + 400 * DAY
        return bad, FUTURE_TIMESTAMP
    if good["event_type"] == "wifi_checkin":
        bad["rssi"] = -150
    elif good["event_type"] == "purchase":
        bad["amount_cents"] = -good["amount_cents"] - 1
    else:
        bad["event_id"] = f"{good['event_id']}-{'x' * 64}"  # beyond the 64-character limit
    return bad, INVALID_VALUE
