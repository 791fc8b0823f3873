"""What `o2o demo` shows while it runs: worker metrics, live triggers and store visits, and the view.

- `Metrics`: one scrape of the workers' Prometheus endpoints (totals, by label, histogram quantiles).
- `TopicWatcher`: a thread reading the trigger topics and the visits topic from the beginning,
  keeping the latest trigger lines and per-store visit counts.
- `render()`: the rich renderable of one refresh; `status_line()`: the same in one line, for
  terminals that cannot redraw (pipes, CI logs).
"""

from __future__ import annotations

import math
import threading
import time
import urllib.request
import uuid
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any

from pipeline.config import Settings


class Metrics:
    """Samples of one or more `/metrics` scrapes: {sample name: [(labels, value), ...]}."""

    def __init__(self, samples: dict[str, list[tuple[dict[str, str], float]]] | None = None) -> None:
        self.samples = samples or {}

    @classmethod
    def scrape(cls, *urls: str) -> "Metrics":
        """Scrape every url (a worker not answering yet contributes nothing) and merge the samples."""
        from prometheus_client.parser import text_string_to_metric_families

        samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
        for url in urls:
            try:
                with urllib.request.urlopen(url, timeout=3) as response:
                    text = response.read().decode()
            except OSError:
                continue
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    samples[sample.name].append((sample.labels, sample.value))
        return cls(dict(samples))

    def _matching(self, name: str, match: dict[str, str]):
        for labels, value in self.samples.get(name, ()):
            if all(labels.get(k) == v for k, v in match.items()):
                yield labels, value

    def total(self, name: str, **match: str) -> float:
        return sum(value for _, value in self._matching(name, match))

    def by(self, name: str, label: str, **match: str) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for labels, value in self._matching(name, match):
            out[labels.get(label, "")] += value
        return dict(out)

    def has(self, name: str) -> bool:
        return bool(self.samples.get(name))

    def quantile(self, histogram: str, q: float, **match: str) -> float | None:
        """Like PromQL's histogram_quantile over the summed buckets; None without observations."""
        buckets: dict[float, float] = defaultdict(float)
        for labels, value in self._matching(histogram + "_bucket", match):
            buckets[float(labels["le"])] += value
        bounds = sorted(buckets.items())
        if not bounds or bounds[-1][1] <= 0:
            return None
        rank = q * bounds[-1][1]
        lower, below = 0.0, 0.0
        for upper, count in bounds:
            if count >= rank:
                if math.isinf(upper):
                    return lower  # beyond the last finite bucket: its bound, as Prometheus does
                if count == below:
                    return upper
                return lower + (upper - lower) * (rank - below) / (count - below)
            lower, below = upper, count
        return lower


@dataclass
class StoreCounts:
    in_store: int = 0
    visitors: int = 0
    passersby: int = 0
    triggers: int = 0


class TopicWatcher(threading.Thread):
    """Follows the trigger topics and the visits topic (assign() only: no consumer group)."""

    def __init__(self, settings: Settings, zone: tzinfo, lines: int = 6) -> None:
        super().__init__(name="demo-topics", daemon=True)
        self.settings, self.zone = settings, zone
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.lines: deque[str] = deque(maxlen=lines)
        self.triggers_seen = 0
        self.triggers_by_store: Counter = Counter()
        self.visits: dict[str, tuple[str, str, str]] = {}  # visit id -> (store, state, class), latest version
        self.error: str | None = None

    def run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        from pipeline.serde import EventCodec, registry_from_settings
        from pipeline.topics import VISITS, trigger_topics

        settings = self.settings
        codec = EventCodec(registry_from_settings(settings))
        triggers = set(trigger_topics(settings).values())
        visits = settings.topic(VISITS)
        consumer = Consumer({**settings.kafka_client_config(), "group.id": f"o2o-demo-{uuid.uuid4().hex[:8]}",
                             "enable.auto.commit": False})
        try:
            metadata = consumer.list_topics(timeout=10).topics
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for topic in sorted(triggers | {visits})
                             if topic in metadata for p in metadata[topic].partitions])
            while not self.stop.is_set():
                for message in consumer.consume(num_messages=500, timeout=0.5):
                    if message.error() is not None:
                        continue
                    if message.topic() == visits:
                        self._visits(codec.decode_outputs(message.value())[1])
                    else:
                        self._trigger(codec.decode_output(message.value())[1])
        except Exception as exc:  # the view is a bonus: say why it stopped, never take the demo down
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            consumer.close()

    def _visits(self, records: list[dict[str, Any]]) -> None:
        with self.lock:
            for record in records:
                self.visits[record["visit_id"]] = (record["store_id"], record["state"], record["class"])

    def _trigger(self, trigger: dict[str, Any]) -> None:
        at = datetime.fromtimestamp(trigger["fired_at"] / 1000, timezone.utc).astimezone(self.zone)
        who = trigger.get("member_id") or (trigger.get("person_id") or "-")[:16]
        payload = trigger.get("payload") or {}
        detail = ", ".join(f"{k}={_short(v)}" for k, v in payload.items()
                           if k not in ("store_id", "visit_id", "member_id") and v not in (None, "", []))
        line = (f"{at:%a %H:%M}  {trigger['rule']:21} {trigger['kind']:9} {who:18} "
                f"{trigger.get('store_id') or '-':9} {detail}")
        with self.lock:
            self.triggers_seen += 1
            self.lines.append(line[:140])
            if trigger.get("store_id"):
                self.triggers_by_store[trigger["store_id"]] += 1

    def top_stores(self, n: int = 5) -> list[tuple[str, StoreCounts]]:
        stores: dict[str, StoreCounts] = defaultdict(StoreCounts)
        with self.lock:
            for store, state, visit_class in self.visits.values():
                if state == "open":
                    stores[store].in_store += 1
                elif state == "closed":
                    if visit_class == "visitor":
                        stores[store].visitors += 1
                    else:
                        stores[store].passersby += 1
            for store, count in self.triggers_by_store.items():
                stores[store].triggers = count
        return sorted(stores.items(), key=lambda kv: (-kv[1].visitors, -kv[1].in_store, kv[0]))[:n]

    def latest(self) -> list[str]:
        with self.lock:
            return list(self.lines)


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "/".join(str(v) for v in value[:3]) + ("/…" if len(value) > 3 else "")
    return str(value)[:24]


# --- one refresh ------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    """Everything one refresh shows."""

    phase: str                         # starting, producing, draining, drained
    elapsed_s: float
    duration_s: float
    rate: float
    produced: int
    in_per_s: float
    out_per_s: float
    metrics: Metrics
    lag: dict[str, float] = field(default_factory=dict)   # group -> records
    stores: list[tuple[str, StoreCounts]] = field(default_factory=list)
    trigger_lines: list[str] = field(default_factory=list)
    note: str = ""


def status_line(snap: Snapshot) -> str:
    m = snap.metrics
    accepted, dead = m.total("o2o_events_accepted_total"), m.total("o2o_dead_letters_total")
    return (f"[{snap.elapsed_s:5.0f} s] {snap.phase:9} produced {snap.produced:,}  in {snap.in_per_s:,.0f}/s  "
            f"out {snap.out_per_s:,.0f}/s  lag {sum(snap.lag.values()):,.0f}  accepted {accepted:,.0f}  "
            f"dead letters {dead:,.0f}  sessions open {m.total('o2o_journey_open_sessions'):,.0f} closed "
            f"{m.total('o2o_sessions_closed_total'):,.0f}  triggers {m.total('o2o_triggers_published_total'):,.0f}")


def render(snap: Snapshot):
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    m = snap.metrics

    def kv(title: str, rows: list[tuple[str, str]], empty: str = "–") -> Panel:
        t = Table.grid(padding=(0, 1))
        t.add_column(style="dim")
        t.add_column(justify="right")
        for name, value in rows or [(empty, "")]:
            t.add_row(name, value)
        return Panel(t, title=title, title_align="left", padding=(0, 1))

    n = lambda value: f"{value:,.0f}"  # noqa: E731
    progress = f"{min(snap.elapsed_s, snap.duration_s):.0f} / {snap.duration_s:.0f} s" if snap.phase == "producing" else ""
    head = Text.assemble(("o2o demo  ", "bold"), (f"{snap.phase} ", "bold cyan"), progress,
                         f"   {n(snap.produced)} events sent at {snap.rate:,.0f}/s" if snap.rate else
                         f"   {n(snap.produced)} events sent", (f"   {snap.note}" if snap.note else "", "yellow"))
    visits = m.by("o2o_visits_closed_total", "class")
    flow = kv("Flow", [
        ("events in /s", n(snap.in_per_s)), ("stored in ClickHouse /s", n(snap.out_per_s)),
        ("accepted", n(m.total("o2o_events_accepted_total"))), ("duplicates", n(m.total("o2o_duplicates_total"))),
        ("dead letters", n(m.total("o2o_dead_letters_total"))),
        ("consumer lag", n(sum(snap.lag.values()))),
    ])
    journey = kv("Journey", [
        ("persons", n(m.total("o2o_journey_persons"))), ("sessions open", n(m.total("o2o_journey_open_sessions"))),
        ("sessions closed", n(m.total("o2o_sessions_closed_total"))),
        ("visits open", n(m.total("o2o_journey_open_visits"))),
        ("visitors", n(visits.get("visitor", 0))), ("passersby", n(visits.get("passerby", 0))),
    ])
    lag = kv("Consumer lag by group", [(group.split("-", 1)[-1].replace("-", " "), n(v))
                                       for group, v in sorted(snap.lag.items())],
             "waiting")
    triggers = kv("Triggers by rule", [(rule, n(v)) for rule, v in sorted(
        m.by("o2o_triggers_published_total", "rule").items(), key=lambda kv_: -kv_[1])], "none yet")
    dead = kv("Dead letters by reason", [(reason, n(v)) for reason, v in sorted(
        m.by("o2o_dead_letters_total", "reason").items(), key=lambda kv_: -kv_[1])], "none yet")
    stores = Table(box=None, padding=(0, 1), show_edge=False)
    for column in ("store", "in store", "visitors", "passersby", "triggers"):
        stores.add_column(column, justify="left" if column == "store" else "right")
    for store, counts in snap.stores:
        stores.add_row(store, n(counts.in_store), n(counts.visitors), n(counts.passersby), n(counts.triggers))
    top = Panel(stores if snap.stores else Text("no visits yet", style="dim"), title="Top stores",
                title_align="left", padding=(0, 1))
    grid = Table.grid(padding=(0, 1))
    for _ in range(3):
        grid.add_column()
    grid.add_row(flow, journey, lag)
    grid.add_row(triggers, dead, top)
    lines = Panel(Text("\n".join(snap.trigger_lines) or "no triggers yet", no_wrap=True, overflow="ellipsis"),
                  title="Latest triggers (fired at, event time)", title_align="left", padding=(0, 1))
    return Group(head, grid, lines)


class Rates:
    """Events per second from successive counter readings, over the last few seconds."""

    def __init__(self, window_s: float = 3.0) -> None:
        self.window_s = window_s
        self.points: deque[tuple[float, float]] = deque()

    def add(self, value: float, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self.points.append((now, value))
        while len(self.points) > 2 and now - self.points[1][0] >= self.window_s:
            self.points.popleft()
        (t0, v0), (t1, v1) = self.points[0], self.points[-1]
        return (v1 - v0) / (t1 - t0) if t1 > t0 else 0.0
