"""What a journey restore costs on a long changelog, with and without snapshots (no broker).

    .venv/bin/python bench/restore_bench.py                  # 1M events (~3 minutes, ~3 GB of memory)
    .venv/bin/python bench/restore_bench.py --events 200000

The core's synthetic stream (bench/core_bench.py) runs through JourneyProcessor in batches, and
every batch writes what the journey agent writes: an intent, then a changelog group of its changes
and the event ids it saw; with snapshots, the group holds the whole state when SnapshotSchedule
says so (64 MiB of changes since the last one; the interval never comes due in the run). Then
the log is replayed as a restore does (replay_changelog, JourneyProcessor.restore) and the result
is checked against the live state.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.changelog import SnapshotSchedule, changelog_group, intent_record, replay_changelog  # noqa: E402
from bench.core_bench import synthetic_stream  # noqa: E402
from pipeline.journey import JourneyProcessor  # noqa: E402


def written_log(events: list[dict], batch: int, snapshots: bool) -> tuple[list[bytes], JourneyProcessor]:
    processor = JourneyProcessor(track_changes=True)
    schedule = SnapshotSchedule(interval_s=3600, min_bytes=64 * 1024 * 1024)
    log: list[bytes] = []
    for offset in range(0, len(events), batch):
        chunk = sorted(events[offset:offset + batch], key=lambda e: e["occurred_at"])
        processor.process(chunk)
        changes = processor.drain_changes() + [("seen", [[e["event_id"], e["occurred_at"]] for e in chunk])]
        # The first flush is a snapshot in a worker; here it is one in neither run, to compare like with like.
        snapshot = snapshots and offset > 0 and schedule.due(1.0)
        group = changelog_group(offset, list(processor.snapshot().items()) if snapshot else changes, snapshot)
        schedule.wrote(group, snapshot or offset == 0, 1.0)
        log += [intent_record(offset)] + group
    return log, processor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=2_000, help="events per batch (one changelog group each)")
    args = parser.parse_args()
    events = synthetic_stream(args.events)
    for snapshots in (False, True):
        log, live = written_log(events, args.batch, snapshots)
        began = time.perf_counter()
        changes, _, _ = replay_changelog(log)
        replayed = time.perf_counter()
        restored = JourneyProcessor.restore([(k, v) for k, v in changes if k != "seen"])
        done = time.perf_counter()
        assert restored.snapshot() == live.snapshot(), "the restored state differs from the live one"
        print(f"snapshots {'on ' if snapshots else 'off'}: log {len(log):,} records, "
              f"{sum(map(len, log)) / 1e6:,.0f} MB; replay {replayed - began:.1f} s, "
              f"restore {done - replayed:.1f} s; changes applied {len(changes):,}", flush=True)


if __name__ == "__main__":
    main()
