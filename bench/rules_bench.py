"""Throughput of the trigger rule engine alone (pipeline/rules), on the journey stage's real output.

    .venv/bin/python bench/rules_bench.py                      # 1M events, batches of 1,000
    .venv/bin/python bench/rules_bench.py --events 200000 --changes-every 10 --profile

The stream is core_bench's synthetic day (members and anonymous devices, browsing, store visits,
purchases, shares, complaints, uploads up to hours late). Each batch goes through JourneyProcessor
first, as in the agent, and then through RuleEngine.on_batch with the (person, event) pairs and the
JourneyBatch; only the rule engine's calls are timed, in CPU time of this process (the journey's
objects are live, so the two must run interleaved; CPU time keeps other load on the machine out of
the number). All shipped rules run with their default controls (quiet hours included).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import time
from typing import Any

from core_bench import set_gc, synthetic_stream

from pipeline.journey import JourneyProcessor
from pipeline.rules import RuleEngine, load_rules

TARGET_EVENTS_PER_S = 200_000


def run(events: list[dict[str, Any]], batch_size: int, changes_every: int) -> dict[str, Any]:
    journey = JourneyProcessor()
    engine = RuleEngine(load_rules(), journey.policy, track_changes=bool(changes_every))
    out = {"triggers": 0, "suppressed": 0, "held": 0, "changelog_records": 0}
    spent = 0.0
    gc.collect()
    for batch_no, offset in enumerate(range(0, len(events), batch_size), start=1):
        batch = journey.process(events[offset:offset + batch_size])
        began = time.process_time()
        result = engine.on_batch(batch.resolved, batch)
        if changes_every and batch_no % changes_every == 0:
            out["changelog_records"] += len(engine.drain_changes())
        spent += time.process_time() - began
        out["triggers"] += len(result.triggers)
        out["suppressed"] += len(result.suppressed)
        out["held"] += len(result.held)
    final = journey.close_all()
    began = time.process_time()
    result = engine.on_batch([], final)
    result.extend(engine.finish())
    spent += time.process_time() - began
    out["triggers"] += len(result.triggers)
    out["suppressed"] += len(result.suppressed)
    state = engine.snapshot()
    out.update(events=len(events), seconds=round(spent, 3), events_per_s=round(len(events) / spent),
               published_by_rule=engine.stats["published"], suppressed_by_rule=engine.stats["suppressed"],
               persons_in_state=sum(1 for key in state if key.startswith("p:")),
               state_json_bytes=len(json.dumps(state)), batch_size=batch_size, changes_every=changes_every,
               gc_threshold=gc.get_threshold(), gc_enabled=gc.isenabled())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1_000, help="events per batch")
    parser.add_argument("--changes-every", type=int, default=0,
                        help="track changes and drain the changelog every N batches (0: off)")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is reported")
    parser.add_argument("--profile", action="store_true", help="print the top functions by own time")
    parser.add_argument("--gc", choices=("default", "tuned", "off"), default="default",
                        help="tuned: gc.set_threshold(100_000, 50, 100), as core_bench and a long-running agent")
    args = parser.parse_args()

    began = time.perf_counter()
    events = synthetic_stream(args.events)
    print(f"generated {len(events):,} events in {time.perf_counter() - began:.1f}s", flush=True)
    set_gc(args.gc)  # the pre-built input is not part of the cost
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run(events, args.batch, args.changes_every)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        return
    results = []
    for attempt in range(1, args.repeat + 1):
        result = run(events, args.batch, args.changes_every)
        results.append(result)
        print(f"run {attempt}: {result['events_per_s']:,} events/s in the rule engine ({result['seconds']}s)",
              flush=True)
    best = max(results, key=lambda r: r["events_per_s"])
    print(json.dumps(best, indent=1))
    verdict = "met" if best["events_per_s"] >= TARGET_EVENTS_PER_S else "NOT met"
    print(f"target {TARGET_EVENTS_PER_S:,} events/s on one core: {verdict} (best {best['events_per_s']:,})")


if __name__ == "__main__":
    main()
