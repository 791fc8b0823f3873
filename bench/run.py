"""`o2o bench`: every contestant on the same events in one run, then a paced run for latencies.

Throughput (events/s, both record layouts, a fresh private local stack for each, same generated events;
with `rounds`, every contestant and layout that many times, interleaved, reported as medians):
    raw_limit     confluent-kafka consume + Avro decode, no processing (bench/baselines/raw_limit.py)
    naive_faust   faust sessionizer, a Table update per event (bench/baselines/naive_faust.py)
    quix          Quix Streams session-window count per person (bench/baselines/quix.py)
    o2o_pipeline  the real workers until every event is in ClickHouse (bench/baselines/pipeline_e2e.py)

Latency (paced run: the simulator through the producer SDK at `rate` events/s for `seconds`, the
real workers running, warmed up first):
    trigger    causing event's ingress append -> trigger record's append, for triggers that fire on
               their cause (not timers: a share invite waits two hours of event time by design);
               exact, from the topics' record timestamps. Arrivals recognised later (the check-in
               was an anonymous MAC's, and a later login merged it into a member) are reported
               apart: their delay is the customer's, between check-in and login
    freshness  event's ingress append -> its row built for ClickHouse (`ingested_at`), exact per
               event; the insert itself then takes `o2o_sink_insert_seconds` (reported too)
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from bench.baselines import naive_faust, pipeline_e2e, quix, raw_limit
from bench.baselines.common import LAYOUTS, bench_settings, generate_events, wait_until
from pipeline.config import Settings

CONTESTANTS = {"raw_limit": raw_limit.run, "naive_faust": naive_faust.run, "quix": quix.run,
               "o2o_pipeline": pipeline_e2e.run}


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def throughput(n: int, report: Callable[[str], None], rounds: int = 1) -> list[list[dict[str, Any]]]:
    """Each contestant and layout on a fresh private stack, `rounds` times: one list of results per
    round. A round runs every contestant and layout once, in the same order, so a change in this
    machine's speed (±25 % within minutes) falls on all of them alike; `combine` takes the ratios
    within each round.

    A fresh stack each time: the local broker keeps every record in memory (130 MB more after each
    pipeline run), so on one shared stack the contestants run last would work on a fuller broker
    than the first ones (four pipeline runs in a row on one stack: 11,800, 11,000, 11,600, 9,200
    events/s)."""
    events = generate_events(n)
    by_round = []
    for round_no in range(1, rounds + 1):
        results = []
        of_rounds = f", round {round_no} of {rounds}" if rounds > 1 else ""
        for layout in LAYOUTS:
            for name, run in CONTESTANTS.items():
                report(f"{name} ({layout} records, {n:,} events{of_rounds}) ...")
                with bench_settings(running=False) as settings:
                    result = run(settings, events, layout)
                report(f"  {result['events_per_s']:,.0f} events/s")
                results.append(result)
        by_round.append(results)
    return by_round


def ratios(results: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """pipeline / contestant per layout (and vs naive faust's one-event-per-record layout), one round."""
    rate = {(r["contestant"], r["layout"]): r["events_per_s"] for r in results}
    out: dict[str, dict[str, float | None]] = {}
    for layout in LAYOUTS:
        ours = rate.get(("o2o_pipeline", layout))
        out[layout] = {f"pipeline/{name}": round(ours / rate[(name, layout)], 2) if ours and rate.get((name, layout))
                       else None for name in ("naive_faust", "quix", "raw_limit")}
    naive_single, ours_batched = rate.get(("naive_faust", "single")), rate.get(("o2o_pipeline", "batched"))
    if naive_single and ours_batched:
        out["batched"]["pipeline/naive_faust_single"] = round(ours_batched / naive_single, 2)
    return out


def combine(by_round: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """The rounds of `throughput` as `o2o bench` reports them.

    "results": per contestant and layout, its median run (the lower middle one for an even number of
    rounds: always a run that happened), with every round's events/s in "rounds_events_per_s";
    "ratios": each ratio's median over the rounds, a ratio being taken within a round;
    "ratios_by_round": each round's own. One round: that round's results and ratios."""
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for results in by_round:
        for result in results:
            runs.setdefault((result["contestant"], result["layout"]), []).append(result)
    combined = []
    for of_one in runs.values():
        ranked = sorted(of_one, key=lambda r: r["events_per_s"] or 0)
        combined.append({**ranked[(len(ranked) - 1) // 2], "rounds_events_per_s": [r["events_per_s"] for r in of_one]})
    per_round = [ratios(results) for results in by_round]
    medians: dict[str, dict[str, float | None]] = {}
    for layout, names in per_round[0].items():
        medians[layout] = {}
        for name in names:
            values = [r[layout][name] for r in per_round if r[layout].get(name) is not None]
            medians[layout][name] = round(statistics.median(values), 2) if values else None
    return {"results": combined, "ratios": medians, "ratios_by_round": per_round}


def daytime_end_ms(settings: Settings, now_ms: int) -> int:
    """The last 21:00 before `now_ms` in the stores' default time zone: the paced run's simulated day
    ends there, so its events fall in shopping hours whatever the time of the run. (Ending at the
    wall clock put them at night for part of the day, where the default quiet hours hold every
    marketing trigger, and only complaint_recovery fired and was measured.)"""
    zone = ZoneInfo(settings.rules().controls.default_timezone)
    now = datetime.fromtimestamp(now_ms / 1000, zone)
    end = now.replace(hour=21, minute=0, second=0, microsecond=0)
    if end > now:
        end -= timedelta(days=1)
    return int(end.timestamp() * 1000)


def paced(settings: Settings, rate: float, seconds: float, report: Callable[[str], None],
          groups: tuple[str, ...] = pipeline_e2e.WORKERS, **worker_env: str) -> dict[str, Any]:
    from pipeline.simulate import Mix, Simulation
    from pipeline.traffic import bounded, plan_start_ms, produce

    ready = pipeline_e2e.prepared(settings, f"paced-{uuid.uuid4().hex[:8]}")
    workers = pipeline_e2e.Workers(ready, Path(tempfile.mkdtemp(prefix="o2o-paced-")), groups,
                                   **{"O2O_ALLOWED_LATENESS_MS": str(3_600_000), **worker_env})
    try:
        report("paced run: warming up the workers ...")
        mix = Mix(persons=2_000, stores=20, bad_rate=0.0)
        n = int(rate * seconds)
        start_ms = plan_start_ms(7, mix, n + 100, daytime_end_ms(settings, int(time.time() * 1000)))
        records = iter(Simulation(7, start_ms, mix).records())
        produce(ready, bounded(records, 100, None), 0)
        wait_until(lambda: pipeline_e2e.stored_events(ready) > 0, 120, "the warm-up events stored", 0.2)
        report(f"paced run: {rate:,.0f} events/s for {seconds:.0f} s ...")
        summary = produce(ready, bounded(records, n, None), rate)
        expected = summary.delivered + 100
        wait_until(lambda: workers.metric("o2o_journey_events_total") >= expected, 300, "the paced events processed")
        wait_until(lambda: pipeline_e2e.stored_events(ready) >= expected, 300, "the paced events stored")
        samples = workers.samples()
        insert_p99 = histogram_quantile(samples, "o2o_sink_insert_seconds", 0.99, 'table="events"')
        cpu = workers.cpu_seconds()
    finally:
        workers.stop()
    appended = ingress_append_ms(ready)
    triggers, recognised_later = trigger_latencies_ms(ready, appended)
    fresh = freshness_ms(ready, appended)
    return {"rate": rate, "seconds": seconds, "events": summary.delivered, "cpu_s": cpu, "steps_s": pipeline_e2e.step_seconds(samples),
            "achieved_rate": round(summary.events_per_s, 1),
            "trigger_latency_ms": {**summary_ms([v for values in triggers.values() for v in values]),
                                   "by_rule": {rule: summary_ms(values) for rule, values in sorted(triggers.items())},
                                   "recognised_later_by_a_merge": summary_ms(recognised_later)},
            "clickhouse_freshness_ms": {"count": len(fresh), "p50": quantile(fresh, 0.5), "p99": quantile(fresh, 0.99),
                                        "insert_p99_s_bucket": insert_p99}}


def ingress_append_ms(settings: Settings) -> dict[str, int]:
    """event id -> its ingress record's append timestamp (ms)."""
    from agents.changelog import read_to_end
    from pipeline.serde import DecodeError, EventCodec
    from pipeline.topics import ingress_topics

    codec = EventCodec()
    appended: dict[str, int] = {}
    for message in read_to_end(settings, list(ingress_topics(settings).values())):
        try:
            events = codec.decode(message.value())
        except DecodeError:
            continue
        for event in events:
            appended.setdefault(event["event_id"], message.timestamp()[1])
    return appended


def trigger_latencies_ms(settings: Settings, appended: dict[str, int]) -> tuple[dict[str, list[float]], list[float]]:
    """(rule -> latencies in ms of triggers that fired on their cause's arrival, latencies of those
    whose cause was attributed to another (anonymous) person at ingest: recognised later, when an
    identity merge moved the visit to a member; those measure how long recognition took, not the
    pipeline)."""
    from clickhouse_driver import Client

    from agents.changelog import read_to_end
    from pipeline.serde import EventCodec
    from pipeline.topics import trigger_topics

    codec = EventCodec()
    fired = []
    for message in read_to_end(settings, list(trigger_topics(settings).values())):
        trigger = codec.decode_output(message.value())[1]
        if trigger["fired_at"] == trigger["event_time"] and any(c in appended for c in trigger["cause_event_ids"]):
            fired.append((trigger, message.timestamp()[1]))
    client = Client(**settings.clickhouse_client_kwargs())
    try:
        causes = sorted({c for trigger, _ in fired for c in trigger["cause_event_ids"]})
        person_at_ingest = dict(client.execute("SELECT event_id, any(person_id) FROM events WHERE event_id IN %(ids)s "
                                               "GROUP BY event_id", {"ids": tuple(causes)})) if causes else {}
    finally:
        client.disconnect()
    latencies: dict[str, list[float]] = {}
    recognised_later: list[float] = []
    for trigger, appended_at in fired:
        latency = appended_at - max(appended[c] for c in trigger["cause_event_ids"] if c in appended)
        if any(person_at_ingest.get(c) not in (None, trigger["person_id"]) for c in trigger["cause_event_ids"]):
            recognised_later.append(latency)
        else:
            latencies.setdefault(trigger["rule"], []).append(latency)
    return latencies, recognised_later


def summary_ms(values: list[float]) -> dict[str, Any]:
    return {"count": len(values), "p50": quantile(values, 0.5), "p99": quantile(values, 0.99)}


def freshness_ms(settings: Settings, appended: dict[str, int]) -> list[float]:
    from clickhouse_driver import Client

    client = Client(**settings.clickhouse_client_kwargs())
    try:
        rows = client.execute("SELECT event_id, min(ingested_at_ms) FROM events GROUP BY event_id")
    finally:
        client.disconnect()
    return [ingested - appended[event_id] for event_id, ingested in rows if event_id in appended]


def histogram_quantile(samples: dict[str, float], metric: str, q: float, label: str) -> float | None:
    """The upper bound of the bucket holding quantile q (Prometheus' histogram_quantile, roughly)."""
    buckets = sorted((float(k.split('le="', 1)[1].split('"', 1)[0]), v) for k, v in samples.items()
                     if k.startswith(metric + "_bucket{") and label in k)
    if not buckets or buckets[-1][1] == 0:
        return None
    for bound, count in buckets:
        if count >= q * buckets[-1][1]:
            return bound
    return None


def run_bench(events: int, rate: float, seconds: float, report: Callable[[str], None],
              rounds: int = 1) -> dict[str, Any]:
    throughputs = combine(throughput(events, report, rounds))
    with bench_settings(running=False) as settings:
        latency = paced(settings, rate, seconds, report)
    return {"events": events, "rounds": rounds, **throughputs, "paced": latency}
