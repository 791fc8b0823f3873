"""`o2o demo`: the whole loop on the local stack, start to finish, showing what happens while it happens.

1. starts the local stack (Tansu broker, ClickHouse) and runs `o2o init` (topics, migrations);
2. starts two workers as subprocesses, each with its own metrics port: `o2o worker --agents
   ingest,journey` and `o2o worker --agents sink` (two processes use both cores of a small box),
   and waits until both answer /readyz;
3. runs the simulator through the producer SDK at `rate` events/s for `duration_s` seconds: a
   day of O2O traffic from 09:00 store time (the latest such morning that lies in the past), with
   deliberately bad records and late gateway uploads (the simulate_* settings);
4. meanwhile shows a live view (pipeline/demo_view.py) from the workers' Prometheus endpoints and
   the trigger and visit topics;
5. waits until the pipeline has drained: every produced event accounted for (accepted +
   duplicates + dead letters), every accepted event stored in ClickHouse `events`, and the lag of
   every consumer group 0;
6. prints the `o2o report` KPIs and where to look next, and returns the summary (`--json`);
7. stops the workers and the stack components it started, unless `keep_running`. Ctrl-C (or
   SIGTERM) at any point stops everything it started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.config import Settings
from pipeline.demo_view import Metrics, Rates, Snapshot, TopicWatcher, render, status_line

DEFAULT_RATE = 2000.0
DEFAULT_DURATION_S = 60.0
READY_TIMEOUT_S = 90.0
LAG_INTERVAL_S = 2.0   # agents/lag.py refreshes the lag gauge this often
DAY_START_HOUR = 9
WORKERS = (("pipeline", "ingest,journey"), ("sink", "sink"))


class DemoError(Exception):
    """The demo cannot go on; the message says what went wrong and where to look."""


@dataclass
class DemoOptions:
    rate: float = DEFAULT_RATE
    duration_s: float = DEFAULT_DURATION_S
    persons: int | None = None        # None: the simulate_persons setting
    seed: int = 7
    keep_running: bool = False
    drain_timeout_s: float = 180.0
    config: Path | None = None        # passed on to the workers


@dataclass
class Worker:
    name: str
    agents: str
    port: int
    log: Path
    process: subprocess.Popen

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise DemoError(f"worker {self.name} (o2o worker --agents {self.agents}) exited with code "
                            f"{self.process.returncode}; last lines of {self.log}:\n{_tail(self.log)}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url("/readyz"), timeout=5) as response:
                return response.status == 200
        except (OSError, urllib.error.HTTPError):
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "agents": self.agents, "pid": self.process.pid,
                "metrics_url": self.url("/metrics"), "log": str(self.log)}


@dataclass
class Run:
    """What the run has started and measured so far."""

    settings: Settings
    options: DemoOptions
    console: Any
    stopped_components: list = field(default_factory=list)  # stack components this run started
    workers: list[Worker] = field(default_factory=list)
    watcher: TopicWatcher | None = None
    traffic: "Traffic | None" = None
    started: float = field(default_factory=time.monotonic)
    marks: dict[str, float] = field(default_factory=dict)

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)


def run_demo(settings: Settings, options: DemoOptions, console: Any) -> dict[str, Any]:
    """Run the demo; returns the summary (README, "The demo"). Raises DemoError, StackError,
    ConnectionError, KeyboardInterrupt (Ctrl-C or SIGTERM); everything started is stopped then."""
    run = Run(settings, options, console)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    completed = False
    try:
        start_everything(run)
        first_send, drained_at = drive(run)
        summary = summarise(run, first_send, drained_at)
        show_results(run, summary)
        completed = True
        return summary
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if completed and options.keep_running:
                leave_running(run)
            else:
                stop_everything(run)
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous)


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


# --- start and stop -----------------------------------------------------------------------------------


def start_everything(run: Run) -> None:
    from agents.admin import create_topics, migrate_clickhouse
    from pipeline.stack import LocalStack

    settings = run.settings
    stack = LocalStack(settings)
    run.say("starting the local stack (Tansu broker, ClickHouse)")
    for component in stack.components:
        component.command()  # a missing binary is reported before anything starts
    for component in stack.components:
        if component.running_pid():
            run.say(f"  {component.name}: already running on {component.address} (left running afterwards)")
            continue
        run.stopped_components.append(component)  # before starting: Ctrl-C while it starts stops it too
        component.start()
        run.say(f"  {component.name}: started on {component.address}")
    run.say("o2o init: creating topics and the ClickHouse schema")
    outcomes = create_topics(settings)
    applied = migrate_clickhouse(settings)
    created = sum(1 for _, outcome in outcomes if outcome == "created")
    run.say(f"  {created} topics created, {len(outcomes) - created} already there; "
            f"{len(applied)} ClickHouse migrations applied")
    run.marks["baseline_events"] = clickhouse_count(settings, "events")
    ports = worker_ports(settings)
    for (name, agents), port in zip(WORKERS, ports):
        run.workers.append(start_worker(run, name, agents, port))
        run.say(f"  worker {name}: o2o worker --agents {agents}, pid {run.workers[-1].process.pid}, "
                f"metrics {run.workers[-1].url('/metrics')}")
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not all(worker.ready() for worker in run.workers):
        for worker in run.workers:
            worker.check_alive()
        if time.monotonic() > deadline:
            raise DemoError(f"the workers did not become ready within {READY_TIMEOUT_S:.0f} s; see "
                            + ", ".join(str(w.log) for w in run.workers))
        time.sleep(0.5)
    run.say(f"workers ready (/readyz) after {time.monotonic() - run.started:.0f} s; waiting for them to join "
            "their consumer groups")
    wait_for_groups(run)
    run.marks["ready"] = time.monotonic()
    run.say(f"consumer groups stable after {run.marks['ready'] - run.started:.0f} s")


def wait_for_groups(run: Run) -> None:
    """Until every consumer group of the workers is Stable (DescribeGroups): then traffic flows at once,
    and the latency figures measure the pipeline rather than its start."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**run.settings.kafka_client_config(), "log_level": 0})
    groups = sorted(watched_group_names(run.settings))
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        states = {group: future.result(timeout=10).state
                  for group, future in admin.describe_consumer_groups(groups).items()}
        if all(state == ConsumerGroupState.STABLE for state in states.values()):
            return
        for worker in run.workers:
            worker.check_alive()
        if time.monotonic() > deadline:
            raise DemoError(f"the workers' consumer groups are not stable after {READY_TIMEOUT_S:.0f} s: "
                            + ", ".join(f"{g} {str(s).rsplit('.', 1)[-1]}" for g, s in states.items())
                            + "; see " + ", ".join(str(w.log) for w in run.workers))
        time.sleep(0.5)


def worker_ports(settings: Settings) -> list[int]:
    """metrics_port and the next one, or free ports when those are taken (or metrics_port is 0)."""
    import socket

    from pipeline.stack import port_is_free

    ports: list[int] = []
    for offset in range(len(WORKERS)):
        port = settings.metrics_port + offset if settings.metrics_port else 0
        if not port or port in ports or not port_is_free("0.0.0.0", port):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
        ports.append(port)
    return ports


def start_worker(run: Run, name: str, agents: str, port: int) -> Worker:
    settings = run.settings
    log_path = settings.state_dir.resolve() / f"demo-worker-{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pipeline.cli", "worker", "--agents", agents]
    if run.options.config is not None:
        command += ["--config", str(run.options.config)]
    env = {**os.environ, "O2O_METRICS_PORT": str(port)}
    with open(log_path, "ab") as log:
        # Its own session: Ctrl-C reaches the demo only, which then stops the workers in order.
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)
    return Worker(name, agents, port, log_path, process)


def stop_everything(run: Run) -> None:
    if run.traffic is not None:
        run.traffic.stop.set()
        run.traffic.join(timeout=60)
    if run.watcher is not None:
        run.watcher.stop.set()
        run.watcher.join(timeout=10)
    if run.workers or run.stopped_components:
        run.say("stopping the workers and the local stack")
    for worker in run.workers:
        worker.stop()
    for component in reversed(run.stopped_components):
        component.stop()


def leave_running(run: Run) -> None:
    if run.watcher is not None:
        run.watcher.stop.set()
        run.watcher.join(timeout=10)
    pids = " ".join(str(w.process.pid) for w in run.workers)
    run.say(f"still running (--keep-running): workers {pids}, the broker and ClickHouse. "
            f"Stop them with `kill {pids}` and `o2o stack down`.")


# --- traffic ------------------------------------------------------------------------------------------


class Traffic(threading.Thread):
    """The simulator, producing through the SDK (pipeline.traffic.produce) in a thread."""

    def __init__(self, settings: Settings, records, rate: float) -> None:
        super().__init__(name="demo-traffic", daemon=True)
        self.settings, self.records, self.rate = settings, records, rate
        self.stop = threading.Event()
        self.progress = None   # the live TrafficSummary
        self.summary = None    # the final one
        self.error: BaseException | None = None

    def run(self) -> None:
        from pipeline.traffic import produce

        def until_stopped():
            for record in self.records:
                if self.stop.is_set():
                    return
                yield record

        try:
            self.summary = produce(self.settings, until_stopped(), self.rate, self._progress)
        except BaseException as exc:
            self.error = exc

    def _progress(self, summary) -> None:
        self.progress = summary

    @property
    def sent(self) -> int:
        return self.progress.records if self.progress is not None else 0


def simulation_start_ms(settings: Settings, seed: int, mix, planned: int, now_ms: int) -> int:
    """09:00 store time on the latest day whose simulated run of `planned` records ends before now."""
    from pipeline.traffic import plan_start_ms

    latest = plan_start_ms(seed, mix, planned, now_ms)
    zone = ZoneInfo(settings.rules().controls.default_timezone)
    local = datetime.fromtimestamp(latest / 1000, timezone.utc).astimezone(zone)
    morning = local.replace(hour=DAY_START_HOUR, minute=0, second=0, microsecond=0)
    if morning > local:
        morning -= timedelta(days=1)
    return int(morning.timestamp() * 1000)


def start_traffic(run: Run) -> Traffic:
    from pipeline.simulate import Simulation
    from pipeline.traffic import SDK_EVENTS_PER_S_BOUND, bounded, mix_from_settings

    settings, options = run.settings, run.options
    mix = mix_from_settings(settings, persons=options.persons or settings.simulate_persons,
                            stores=settings.simulate_stores, bad_rate=settings.simulate_bad_rate,
                            late_rate=settings.simulate_late_rate)
    planned = int(options.duration_s * (options.rate or SDK_EVENTS_PER_S_BOUND))
    start_ms = simulation_start_ms(settings, options.seed, mix, planned, int(time.time() * 1000))
    run.marks["simulated_from_ms"] = start_ms
    run.marks["persons"], run.marks["stores"] = mix.persons, mix.stores
    zone = ZoneInfo(settings.rules().controls.default_timezone)
    run.say(f"simulating {mix.persons:,} customers and {mix.stores} stores from "
            f"{datetime.fromtimestamp(start_ms / 1000, zone):%Y-%m-%d %H:%M} store time ({zone}): "
            f"{options.rate:,.0f} events/s for {options.duration_s:.0f} s through the producer SDK, "
            f"{settings.simulate_bad_rate:.0%} deliberately bad records, {settings.simulate_late_rate:.0%} "
            "late Wi-Fi uploads")
    records = bounded(Simulation(options.seed, start_ms, mix).records(), None, options.duration_s)
    traffic = Traffic(settings, records, options.rate)
    traffic.start()
    return traffic


# --- the run ------------------------------------------------------------------------------------------


def drive(run: Run) -> tuple[float, float]:
    """Produce and show; returns (first send, drained) monotonic times once the pipeline has drained."""
    from rich.live import Live

    settings, options = run.settings, run.options
    zone = ZoneInfo(settings.rules().controls.default_timezone)
    run.watcher = TopicWatcher(settings, zone)
    run.watcher.start()
    urls = [w.url("/metrics") for w in run.workers]
    first_send = time.monotonic()
    run.traffic = traffic = start_traffic(run)
    in_rate, out_rate = Rates(), Rates()
    phase, produced, settled_at, drain_deadline = "producing", 0, None, None
    last_line = 0.0
    live = Live(console=run.console, auto_refresh=False, transient=False) if run.console.is_terminal else None
    if live is not None:
        live.start()
    try:
        while True:
            for worker in run.workers:
                worker.check_alive()
            metrics = Metrics.scrape(*urls)
            now = time.monotonic()
            accounted = (metrics.total("o2o_events_accepted_total") + metrics.total("o2o_duplicates_total")
                         + metrics.total("o2o_dead_letters_total"))
            stored = metrics.total("o2o_sink_rows_total", table="events")
            lag = metrics.by("o2o_consumer_lag", "group")
            if phase == "producing" and not traffic.is_alive():
                produced = finish_traffic(run)
                phase, drain_deadline = "draining", now + options.drain_timeout_s
                run.marks["produced_at"] = now
            elif phase == "producing":
                produced = traffic.sent
            if phase == "draining":
                accepted = int(metrics.total("o2o_events_accepted_total"))
                if accounted >= produced and stored >= accepted and (
                        clickhouse_count(settings, "events") - run.marks["baseline_events"] >= accepted):
                    settled_at = settled_at or now
                    # Lag gauges refresh every LAG_INTERVAL_S: trust a 0 measured after the settling.
                    if (now - settled_at > LAG_INTERVAL_S + 1 and lag and not any(lag.values())
                            and len(lag) >= len(watched_group_names(settings))):
                        phase = "drained"
                else:
                    settled_at = None
                if phase != "drained" and now > drain_deadline:
                    raise DemoError(
                        f"the pipeline did not drain within {options.drain_timeout_s:.0f} s after the traffic "
                        f"ended: {accounted:,.0f} of {produced:,} events accounted for (accepted + duplicates + "
                        f"dead letters), {stored:,.0f} of {accepted:,} stored in ClickHouse, lag {lag}; see "
                        + ", ".join(str(w.log) for w in run.workers))
            snap = Snapshot(phase, now - first_send, options.duration_s, options.rate, produced,
                            in_rate.add(accounted, now), out_rate.add(stored, now), metrics, lag,
                            run.watcher.top_stores(), run.watcher.latest(),
                            note=run.watcher.error and f"topic view stopped: {run.watcher.error}" or "")
            if live is not None:
                live.update(render(snap), refresh=True)  # once a second, when the numbers change
            elif now - last_line >= 5 or phase == "drained":
                last_line = now
                run.say(status_line(snap))
            if phase == "drained":
                return first_send, settled_at
            time.sleep(1.0)
    finally:
        if live is not None:
            live.stop()


def watched_group_names(settings: Settings) -> set[str]:
    from agents.lag import watched_groups

    return set(watched_groups(settings, {"ingest", "journey", "sink"}))


def finish_traffic(run: Run) -> int:
    """Produced events once the simulator has stopped: good events delivered + bad records sent."""
    traffic = run.traffic
    traffic.join()
    if traffic.error is not None:
        if isinstance(traffic.error, ConnectionError):
            raise traffic.error
        raise DemoError(f"the simulator failed: {type(traffic.error).__name__}: {traffic.error}")
    summary = traffic.summary
    if summary.failed or summary.rejected:
        raise DemoError(f"the simulator could not deliver everything: {summary.failed} failed, rejected "
                        f"{summary.rejected}; {'; '.join(summary.errors[:3])}")
    return summary.delivered + sum(summary.bad.values())


# --- what came out ------------------------------------------------------------------------------------

SUMMARY_TABLES = ("events", "sessions", "store_visits", "triggers_log", "identity_links", "store_minute_stats",
                  "person_profiles")


def clickhouse_count(settings: Settings, table: str) -> int:
    return clickhouse_query(settings, f"SELECT count() FROM {table} FINAL")[0][0]


def clickhouse_query(settings: Settings, sql: str) -> list:
    from clickhouse_driver import Client

    client = Client(**settings.clickhouse_client_kwargs(), connect_timeout=5, send_receive_timeout=60)
    try:
        return client.execute(sql)
    finally:
        client.disconnect()


def summarise(run: Run, first_send: float, drained_at: float) -> dict[str, Any]:
    settings, options, traffic = run.settings, run.options, run.traffic.summary
    metrics = Metrics.scrape(*(w.url("/metrics") for w in run.workers))
    produced = traffic.delivered + sum(traffic.bad.values())
    sessions = {state: n for state, n in clickhouse_query(
        settings, "SELECT state, count() FROM sessions FINAL GROUP BY state")}
    visits = {(state, visit_class): n for state, visit_class, n in clickhouse_query(
        settings, "SELECT state, visit_class, count() FROM store_visits FINAL GROUP BY state, visit_class")}
    o2o = clickhouse_query(settings, "SELECT count() FROM sessions FINAL WHERE state != 'absorbed' "
                                     "AND online_to_offline = 1")[0][0]
    triggers = {rule: int(n) for rule, n in sorted(metrics.by("o2o_triggers_published_total", "rule").items())}
    latency = metrics.quantile("o2o_trigger_latency_seconds", 0.99)
    freshness = metrics.quantile("o2o_sink_freshness_seconds", 0.99, table="events")
    zone = ZoneInfo(settings.rules().controls.default_timezone)
    return {
        "produced": produced,
        "good_events": traffic.good,
        "bad_records": sum(traffic.bad.values()),
        "late_events": traffic.late,
        "accepted": int(metrics.total("o2o_events_accepted_total")),
        "duplicates": int(metrics.total("o2o_duplicates_total")),
        "dead_letters": int(metrics.total("o2o_dead_letters_total")),
        "dead_letters_by_reason": {r: int(n) for r, n in sorted(metrics.by("o2o_dead_letters_total", "reason").items())},
        "person_merges": int(metrics.total("o2o_person_merges_total")),
        "sessions": {"total": sessions.get("open", 0) + sessions.get("closed", 0), "open": sessions.get("open", 0),
                     "closed": sessions.get("closed", 0), "online_to_offline": o2o},
        "visits": {"total": sum(n for (state, _), n in visits.items() if state != "absorbed"),
                   "open": sum(n for (state, _), n in visits.items() if state == "open"),
                   "visitors": visits.get(("closed", "visitor"), 0),
                   "passersby": visits.get(("closed", "passerby"), 0)},
        "triggers_by_rule": triggers,
        "triggers": sum(triggers.values()),
        "clickhouse_rows": {table: clickhouse_count(settings, table) for table in SUMMARY_TABLES},
        "throughput_events_per_s": round(produced / max(drained_at - first_send, 1e-9), 1),
        "trigger_latency_p99_s": None if latency is None else round(latency, 3),
        "clickhouse_freshness_p99_s": None if freshness is None else round(freshness, 3),
        "rate": options.rate,
        "duration_s": options.duration_s,
        "persons": run.marks["persons"],
        "stores": run.marks["stores"],
        "seed": options.seed,
        "simulated_from": datetime.fromtimestamp(run.marks["simulated_from_ms"] / 1000, zone).isoformat(),
        "elapsed_s": {"startup": round(run.marks["ready"] - run.started, 1),
                      "produce": round(run.marks["produced_at"] - first_send, 1),
                      "drain": round(drained_at - run.marks["produced_at"], 1),
                      "total": round(time.monotonic() - run.started, 1)},
        "workers": [w.to_dict() for w in run.workers],
        "kept_running": options.keep_running,
    }


def show_results(run: Run, summary: dict[str, Any]) -> None:
    from sinks.kpis import Period
    from sinks.report import ReportError, fetch_report, print_report

    settings, say = run.settings, run.say
    s = summary
    say("")
    say(f"drained: {s['produced']:,} events produced = {s['accepted']:,} accepted + {s['duplicates']:,} duplicates + "
        f"{s['dead_letters']:,} dead letters; all {s['accepted']:,} accepted events are in ClickHouse `events`")
    say(f"{s['sessions']['total']:,} sessions ({s['sessions']['online_to_offline']:,} online → offline), "
        f"{s['visits']['total']:,} store visits ({s['visits']['visitors']:,} visitors, {s['visits']['passersby']:,} "
        f"passers-by closed), {s['person_merges']:,} anonymous persons recognised, {s['triggers']:,} triggers")
    p99 = lambda v: "–" if v is None else f"{v * 1000:,.0f} ms"  # noqa: E731
    say(f"end to end {s['throughput_events_per_s']:,.0f} events/s; p99 event → trigger {p99(s['trigger_latency_p99_s'])}, "
        f"p99 event → ClickHouse {p99(s['clickhouse_freshness_p99_s'])}")
    say("")
    try:
        print_report(fetch_report(settings, Period.parse(None, None, None)), run.console)
    except ReportError as exc:
        say(f"(o2o report failed: {exc})")
    from pipeline.topics import trigger_topics

    db = settings.clickhouse_database
    say("Where to look next" + ("" if run.options.keep_running else
                                " (run `o2o demo --keep-running` to leave everything up and explore)") + ":")
    say(f"  ClickHouse {settings.clickhouse_host}:{settings.clickhouse_port}, database {db}: tables "
        f"{', '.join(SUMMARY_TABLES)}; e.g. curl 'http://{settings.clickhouse_host}:{settings.clickhouse_http_port}/"
        f"?query=SELECT+count()+FROM+{db}.events'")
    say(f"  trigger topics: {', '.join(trigger_topics(settings).values())}; `o2o triggers tail` prints them")
    say("  `o2o report` (KPIs), `o2o dlq tail` (dead letters with reasons), `o2o triggers tail --no-follow`")
    for worker in run.workers:
        say(f"  worker {worker.name}: {worker.url('/metrics')}, {worker.url('/healthz')}, {worker.url('/readyz')}; "
            f"log {worker.log}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def dumps(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, ensure_ascii=False)


def scrape(port: int) -> dict[str, float]:
    """Metric totals (labels summed) from a worker's Prometheus endpoint on `port`; {} until it is up.
    (Kept for bench/stream_bench.py.)"""
    metrics = Metrics.scrape(f"http://127.0.0.1:{port}/metrics")
    return {name: sum(value for _, value in samples) for name, samples in metrics.samples.items()}
