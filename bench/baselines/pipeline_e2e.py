"""The contestant: o2o-pipeline end to end, with the real agents as `o2o worker` processes.

Five fresh ingress topics are made; their prefix becomes the pipeline's topic prefix, so the
workers read them as their ingress. `o2o init` work (the other topics, a fresh ClickHouse database
with the migrations) is done before the clock, and the workers are warm: one event has gone all the
way into ClickHouse. The clock runs from the first of the same events as the baselines' being
produced (the produce time is in it) until every event is queryable in ClickHouse `events` and the
journey agent has processed every event, which is also when every trigger they cause is
acknowledged on its topic (the journey publishes triggers before it records its progress). (Timing
from the first accepted event instead, on a backlog loaded before the workers start, missed the
first ingest batch, which the 8 MiB fetches made up to a third of the events.)

Workers: one process per stage, `ingest`, `journey` and `sink` (`o2o worker --agents ...`): the
journey is a single writer on one partition, and in one process with ingest it shares a core with
the validation of the backlog (10,000 vs 9,900 events/s, 11,400 vs 9,900 in two alternated pairs
of runs on the quiet machine).

    python bench/baselines/pipeline_e2e.py [--events 100000] [--layout single|batched|both] [--running]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.baselines.common import (ROOT, Loaded, Meter, _free_port, create_ingress_topics, main,  # noqa: E402
                                    encode_records, produce_records, wait_until)

from pipeline.config import Settings  # noqa: E402

NAME = "o2o_pipeline"
DAY_MS = 86_400_000
WORKERS = ("ingest", "journey", "sink")


def scrape(port: int) -> dict[str, float]:
    """Prometheus samples of a worker as {'name{labels}': value}; {} while it is not serving yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            lines = response.read().decode().splitlines()
    except OSError:
        return {}
    return {name: float(value) for name, _, value in (l.rpartition(" ") for l in lines if l and l[0] != "#")}


def step_seconds(samples: dict[str, float]) -> dict[str, float]:
    """`o2o_step_seconds_total` as {'stage="...",step="..."': seconds}: where the workers' batches went."""
    return {k.split("{", 1)[1].rstrip("}"): round(v, 2) for k, v in samples.items()
            if k.startswith("o2o_step_seconds_total{")}


def total(samples: dict[str, float], metric: str) -> float:
    return sum(v for k, v in samples.items() if k == metric or k.startswith(metric + "{"))


class Workers:
    """`o2o worker` processes on `settings` (one per agent group), each with its metrics port."""

    def __init__(self, settings: Settings, log_dir: Path, groups: tuple[str, ...] = WORKERS, **env: str) -> None:
        self.groups = groups
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen] = []
        self.log_dir = log_dir
        for i, agents in enumerate(groups):
            port = _free_port()
            worker_env = {**{k: v for k, v in os.environ.items() if not k.startswith("O2O_")},
                          **settings_env(settings), "O2O_METRICS_PORT": str(port), "O2O_WORKER_AGENTS": agents,
                          "O2O_LOG_LEVEL": "WARNING", **env}
            log = open(log_dir / f"worker-{i}.log", "wb")
            self.processes.append(subprocess.Popen([sys.executable, "-m", "pipeline.cli", "worker"], cwd=ROOT,
                                                   env=worker_env, stdout=subprocess.DEVNULL, stderr=log))
            self.ports.append(port)

    def metric(self, name: str) -> float:
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{NAME}: a worker exited with {process.returncode}; see {self.log_dir}")
        return sum(total(scrape(port), name) for port in self.ports)

    def samples(self) -> dict[str, float]:
        merged: dict[str, float] = {}
        for port in self.ports:
            for name, value in scrape(port).items():
                merged[name] = merged.get(name, 0.0) + value
        return merged

    def gc_seconds(self) -> dict[str, float]:
        """Time each worker has spent in Python's garbage collector so far, by its agents."""
        return {agents: total(scrape(port), "o2o_gc_seconds_total") for agents, port in zip(self.groups, self.ports)}

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) each worker process has used so far, by its agents."""
        out = {}
        for agents, process in zip(self.groups, self.processes):
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[agents] = round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
        return out

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def settings_env(settings: Settings) -> dict[str, str]:
    return {"O2O_STATE_DIR": str(settings.state_dir), "O2O_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "O2O_CLICKHOUSE_PORT": str(settings.clickhouse_port), "O2O_CLICKHOUSE_HTTP_PORT": str(settings.clickhouse_http_port),
            "O2O_CLICKHOUSE_DATABASE": settings.clickhouse_database,
            "O2O_TOPIC_PREFIX": settings.topic_prefix, "O2O_TOPIC_PARTITIONS": str(settings.topic_partitions),
            "O2O_KAFKA_SESSION_TIMEOUT_MS": str(settings.kafka_session_timeout_ms),
            # A backlog of hours read from 20 partitions at once: keep every event on time.
            "O2O_ALLOWED_LATENESS_MS": str(DAY_MS)}


def prepared(settings: Settings, prefix: str) -> Settings:
    """Settings whose ingress is the loaded topics, with every other topic and a fresh database made."""
    from agents.admin import create_topics, migrate_clickhouse

    ready = settings.model_copy(update={"topic_prefix": prefix,
                                        "clickhouse_database": "bench_" + prefix.replace("-", "_").replace(".", "_")})
    create_topics(ready)
    migrate_clickhouse(ready)
    return ready


def stored_events(settings: Settings) -> int:
    from clickhouse_driver import Client

    client = Client(**settings.clickhouse_client_kwargs())
    try:
        return client.execute("SELECT count() FROM events")[0][0]
    finally:
        client.disconnect()


def run(settings: Settings, events: list[dict[str, Any]], layout: str, timeout_s: float = 900.0) -> dict[str, Any]:
    topics = create_ingress_topics(settings, layout)
    ready = prepared(settings, next(iter(topics.values())).rsplit(".", 1)[0])
    workers = Workers(ready, Path(tempfile.mkdtemp(prefix="o2o-bench-")))
    expected = len(events) + 1  # and the warm-up event
    meter = Meter(len(events))
    encoded = encode_records(events, layout, ready.topic_partitions, ready.output_batch_events)
    try:
        # Warm: every worker has joined, restored its state and stored an event before the clock.
        produce_records(ready, topics, encode_records([dict(events[0], event_id="bench-warm-up")], layout, 1))
        wait_until(lambda: stored_events(ready) == 1, 180, f"{NAME}: the warm-up event in ClickHouse", interval_s=0.2)
        cpu_at_start, gc_at_start = workers.cpu_seconds(), workers.gc_seconds()
        meter.add(0)
        clock_started = time.monotonic()
        records = produce_records(ready, topics, encoded)
        loaded = Loaded(list(topics.values()), layout, len(events), records, time.monotonic() - clock_started)
        wait_until(lambda: workers.metric("o2o_events_accepted_total") >= expected, timeout_s,
                   f"{NAME}: every event accepted by ingest", interval_s=0.25)
        accepted_done = time.monotonic()
        wait_until(lambda: workers.metric("o2o_journey_events_total") >= expected, timeout_s,
                   f"{NAME}: every event through the journey", interval_s=0.25)  # each poll scrapes every worker
        journey_done = time.monotonic()
        stored_when_journey_done = stored_events(ready) - 1
        wait_until(lambda: stored_events(ready) >= expected, timeout_s,
                   f"{NAME}: every event in ClickHouse", interval_s=0.1)
        meter.add(len(events))
        samples = workers.samples()
        # CPU while the clock ran: start-up (imports, joining groups, recovery) is not throughput.
        cpu = {agents: round(s - cpu_at_start[agents], 2) for agents, s in workers.cpu_seconds().items()}
        gc_s = {agents: round(s - gc_at_start[agents], 2) for agents, s in workers.gc_seconds().items()}
    finally:
        workers.stop()
    return meter.result(NAME, loaded, triggers=int(total(samples, "o2o_triggers_published_total")),
                        cpu_s=cpu, gc_s=gc_s, produced_s=round(loaded.load_s, 2),
                        accepted_done_s=round(accepted_done - clock_started, 2),
                        journey_done_s=round(journey_done - clock_started, 2),
                        stored_when_journey_done=stored_when_journey_done, stored=stored_events(ready) - 1,
                        journey_batches=int(samples.get('o2o_batch_records_count{stage="journey"}', 0)),
                        steps_s=step_seconds(samples))


if __name__ == "__main__":
    main(NAME, run)
