"""The naive faust baseline: a per-person sessionizer written the way faust's documentation suggests.

One agent over the ingress topics, a faust Table keyed by person, one Table update per event: a
session is [first, last, count]; an event more than 30 minutes after `last` starts a new one. The
person is the event's strongest identifier (no identity graph). It runs as a real worker process
(`faust.Worker`), with the Table's changelog topic created by faust as a user's app would; the
parent process times it from its first event to the last through a small progress file.

With batched records the agent decodes the batch and still updates the Table once per event.

    python bench/baselines/naive_faust.py [--events 100000] [--layout single|batched|both] [--running]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.baselines.common import ROOT, SESSION_GAP_MS, Meter, load, main, person_of, wait_until  # noqa: E402

from pipeline.config import Settings  # noqa: E402

NAME = "naive_faust"


def run(settings: Settings, events: list[dict[str, Any]], layout: str, timeout_s: float = 600.0) -> dict[str, Any]:
    import tempfile

    loaded = load(settings, events, layout)
    report = Path(tempfile.mkdtemp(prefix="naive-faust-")) / "progress.json"
    app_id = f"naive-faust-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "bench.baselines.naive_faust", "worker", settings.kafka_bootstrap_servers,
               ",".join(loaded.topics), str(settings.topic_partitions), app_id, str(report)]
    log = open(report.with_name("worker.log"), "wb")
    worker = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    progress: dict[str, Any] = {}

    def finished() -> bool:
        if worker.poll() is not None:
            raise RuntimeError(f"{NAME}: the worker exited with {worker.returncode}; see {report.with_name('worker.log')}")
        try:
            progress.update(json.loads(report.read_text()))
        except (OSError, ValueError):
            return False
        return progress["count"] >= loaded.events

    try:
        wait_until(finished, timeout_s, f"{NAME} to count {loaded.events} events", interval_s=0.2)
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        log.close()
    meter = Meter(loaded.events)
    meter.count, meter.first, meter.last = progress["count"], 0.0, progress["elapsed_s"]
    return meter.result(NAME, loaded, sessions=progress["sessions"])


def worker_main(bootstrap: str, topics: str, partitions: int, app_id: str, report: str) -> None:
    """The worker process: a plain faust app, as its documentation has it."""
    import faust

    from pipeline.serde import EventCodec

    app = faust.App(app_id, broker=[f"kafka://{s}" for s in bootstrap.split(",")], store="memory://",
                    datadir=str(Path(report).parent / "data"),
                    topic_partitions=partitions, web_enabled=False, consumer_auto_offset_reset="earliest",
                    broker_session_timeout=6.0, broker_heartbeat_interval=0.6)
    source = app.topic(*topics.split(","), value_serializer="raw", key_serializer="raw")
    sessions = app.Table("sessions", default=list, partitions=partitions)
    codec = EventCodec()
    meter = Meter(0)
    started = {"sessions": 0}

    @app.agent(source)
    async def sessionize(stream):
        async for value in stream:
            for event in codec.decode(value):
                person, at = person_of(event), event["occurred_at"]
                session = sessions[person]
                if not session or at - session[1] > SESSION_GAP_MS or session[0] - at > SESSION_GAP_MS:
                    session = [at, at, 1]
                    started["sessions"] += 1
                else:
                    session = [min(session[0], at), max(session[1], at), session[2] + 1]
                sessions[person] = session
                meter.add()

    @app.timer(0.1)
    async def write_progress():
        if meter.first is None:
            return
        tmp = report + ".tmp"
        with open(tmp, "w") as handle:
            json.dump({"count": meter.count, "elapsed_s": meter.elapsed_s, "sessions": started["sessions"]}, handle)
        os.replace(tmp, report)

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        bootstrap, topics, partitions, app_id, report = sys.argv[2:7]
        worker_main(bootstrap, topics, int(partitions), app_id, report)
    else:
        main(NAME, run)
