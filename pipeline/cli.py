"""`o2o`: the command line of o2o-pipeline.

Every command that reads settings takes `--config FILE` (TOML or YAML); environment variables
`O2O_<SETTING>` override the file. `o2o config` shows the effective settings (secrets masked).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer

from pipeline.config import ConfigError, Settings, load_settings

app = typer.Typer(
    help=(
        "o2o-pipeline: real-time online-to-offline retail behaviour pipeline.\n\n"
        "Events from store Wi-Fi gateways and apps flow through Kafka; stream agents recognise each "
        "customer across app and shop, cut sessions and store visits, fire marketing and service "
        "triggers, and ClickHouse holds what dashboards query.\n\n"
        "Start here: `o2o demo` runs the whole loop on a local stack. Settings come from --config FILE "
        "and O2O_* environment variables; `o2o config` shows them."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
stack_app = typer.Typer(rich_markup_mode="markdown", help="Start, inspect and stop the local broker and ClickHouse (for laptops and tests).",
                        no_args_is_help=True)
dlq_app = typer.Typer(rich_markup_mode="markdown", help="Inspect and replay dead letters (rejected input, with reasons).", no_args_is_help=True)
triggers_app = typer.Typer(rich_markup_mode="markdown", help="Watch trigger topics and run aggregate trigger rules.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(dlq_app, name="dlq")
app.add_typer(triggers_app, name="triggers")

ConfigOption = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="Settings file (.toml/.yaml); O2O_* environment variables override it.",
                 envvar="O2O_CONFIG", show_envvar=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")]

log = logging.getLogger("o2o")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def settings_from(config: Path | None, **overrides) -> Settings:
    """Load settings or exit with the explanation; configure logging from them."""
    try:
        settings = load_settings(config, **overrides)
    except ConfigError as exc:
        fail(str(exc), code=2)
    logging.basicConfig(
        level=settings.log_level, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return settings


def not_yet(issue: int) -> NoReturn:
    fail(f"this command is not built yet (tracked as issue #{issue}).", code=3)


# --- config --------------------------------------------------------------------------------------


@app.command("config")
def config_cmd(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show the effective settings (defaults < config file < O2O_* environment); secrets are masked."""
    settings = settings_from(config)
    values = json.loads(settings.model_dump_json())
    if as_json:
        typer.echo(json.dumps(values, indent=2))
        return
    for name, value in values.items():
        typer.echo(f"{name:32} {value}   (env O2O_{name.upper()})")


# --- stack ---------------------------------------------------------------------------------------

StateDirOption = Annotated[
    Optional[Path], typer.Option("--state-dir", help="Where data, logs and pid files live (default .o2o/).")
]


def _stack(config: Path | None, state_dir: Path | None):
    from pipeline.stack import LocalStack

    return LocalStack(settings_from(config, state_dir=state_dir))


@stack_app.command("up")
def stack_up(config: ConfigOption = None, state_dir: StateDirOption = None) -> None:
    """Start the broker (Tansu) and ClickHouse on loopback and wait until both answer. Harmless twice."""
    from pipeline.stack import StackError

    stack = _stack(config, state_dir)
    try:
        statuses = stack.up(report=typer.echo)
    except StackError as exc:
        fail(str(exc))
    for status in statuses:
        typer.echo(f"  {status.name:11} {status.address:22} pid {status.pid}  {status.version}  log {status.log}")
    typer.echo(f"state in {stack.settings.state_dir.resolve()}; stop with `o2o stack down`")


@stack_app.command("status")
def stack_status(config: ConfigOption = None, state_dir: StateDirOption = None, as_json: JsonOption = False) -> None:
    """Report each component: running or not, pid, address, version. Exit code 1 if any is down."""
    stack = _stack(config, state_dir)
    statuses = stack.status()
    if as_json:
        typer.echo(json.dumps({"state_dir": str(stack.settings.state_dir.resolve()),
                               "components": {s.name: s.to_dict() for s in statuses}}, indent=2))
    else:
        for s in statuses:
            state = "running" if s.running else "stopped"
            typer.echo(f"{s.name:11} {state:8} {s.address:22} pid {s.pid or '-'}  {s.version or ''}")
    if not all(s.running for s in statuses):
        raise typer.Exit(1)


@stack_app.command("down")
def stack_down(config: ConfigOption = None, state_dir: StateDirOption = None) -> None:
    """Stop what `o2o stack up` started (SIGTERM, then SIGKILL after 10 s). Harmless if nothing runs."""
    from pipeline.stack import StackError

    try:
        _stack(config, state_dir).down(report=typer.echo)
    except StackError as exc:
        fail(str(exc))


# --- the rest of the product vocabulary -------------------------------------------------------------


@app.command("init")
def init_cmd(config: ConfigOption = None) -> None:
    """Create the Kafka topics and the ClickHouse schema.

    Topics: ingress per event type, dead letters, accepted events, sessions, visits, identity, agent
    state; partitions and retention from topic_partitions and topic_retention_ms. ClickHouse: the
    numbered migrations in sinks/migrations, recorded in the table schema_migrations. Idempotent:
    what exists is left as it is and reported.
    """
    from agents.admin import create_topics, migrate_clickhouse

    settings = settings_from(config)
    try:
        outcomes = create_topics(settings)
    except ConnectionError as exc:
        fail(str(exc))
    for spec, outcome in outcomes:
        typer.echo(f"{outcome:24} {spec.name:36} {spec.partitions:3} partitions  {spec.purpose}")
    try:
        applied = migrate_clickhouse(settings)
    except ConnectionError as exc:
        fail(str(exc))
    where = f"ClickHouse {settings.clickhouse_host}:{settings.clickhouse_port}/{settings.clickhouse_database}"
    typer.echo(f"{where}: applied {', '.join(applied)}" if applied else f"{where}: schema up to date")


@app.command("worker")
def worker_cmd(
    config: ConfigOption = None,
    agents: Annotated[Optional[str], typer.Option(
        help="Agents to run, comma-separated from ingest, journey, sink (default: all; setting worker_agents).")] = None,
) -> None:
    """Run a worker: ingest (validate, hash, dedup), journey (identity, sessions, visits,
    trigger rules) and sink (ClickHouse). Start more workers to share the partitions.

    Stops cleanly on SIGTERM or Ctrl-C; serves Prometheus metrics on metrics_port (0 turns them off).
    """
    from agents.app import run_worker

    settings = settings_from(config, worker_agents=agents)
    try:
        settings.check_ready_for("o2o worker")
    except ConfigError as exc:
        fail(str(exc), code=2)
    run_worker(settings)


@app.command("collector")
def collector_cmd(
    host: Annotated[Optional[str], typer.Option("--host", help="Address to listen on (setting collector_host).")] = None,
    port: Annotated[Optional[int], typer.Option("--port", help="Port to listen on (setting collector_port).")] = None,
    config: ConfigOption = None,
) -> None:
    """Run the HTTP collector: apps and store Wi-Fi gateways (Cisco Meraki, generic) post events over HTTP.

    Endpoints: POST /v1/events (API key), GET/POST /v1/gateways/meraki, POST /v1/gateways/generic,
    GET /v1/stats, /healthz, /readyz, /metrics. A 202 means the broker acknowledged the events.
    SIGTERM or Ctrl-C: stops listening, finishes the requests in flight, flushes, exits.
    """
    from agents.collector import run_collector

    settings = settings_from(config, collector_host=host, collector_port=port)
    try:
        settings.check_ready_for("o2o collector")
        run_collector(settings)
    except ConfigError as exc:
        fail(str(exc), code=2)
    except ConnectionError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot listen on {settings.collector_host}:{settings.collector_port} ({exc.strerror or exc}); "
             "choose another with --port or collector_port")


@app.command("produce")
def produce_cmd(
    file: Annotated[str, typer.Option("--file", "-f", help="JSONL file of events in canonical JSON, or - for stdin.")],
    topic_per_type: Annotated[bool, typer.Option(
        "--topic-per-type", help="Send each event to its type's ingress topic (the default).")] = True,
    topic: Annotated[Optional[str], typer.Option(help="Send every event to this one topic instead.")] = None,
    rejects: Annotated[Optional[Path], typer.Option(
        help="Where lines rejected locally go (default: <file>.rejects.jsonl, or stdin.rejects.jsonl).")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a JSONL file of events to Kafka: validated, personal identifiers hashed, batched.

    Lines that fail validation are not sent: each is written, with its line number, reason code and
    detail, to the reject file, and counted in the summary. Exit code 1 if any line was rejected or
    not delivered.
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from pipeline.producer import EventProducer, send_jsonl

    settings = settings_from(config)
    source = sys.stdin.buffer if file == "-" else _open_input(Path(file))
    reject_path = rejects or Path("stdin.rejects.jsonl" if file == "-" else f"{file}.rejects.jsonl")
    total = None if file == "-" else Path(file).stat().st_size
    try:
        producer = EventProducer(settings, topic=None if topic_per_type and not topic else topic)
    except ConnectionError as exc:
        fail(str(exc))
    rejected_lines = 0
    with open(reject_path, "w") as reject_out, producer, Progress(
        TextColumn("sending"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
        disable=as_json or not sys.stderr.isatty(), console=_stderr_console(),
    ) as progress:
        task = progress.add_task("send", total=total)

        def on_reject(line_no: int, line: bytes, rejection) -> None:
            nonlocal rejected_lines
            rejected_lines += 1
            text = line.decode(errors="replace").rstrip("\n") if isinstance(line, bytes) else line.rstrip("\n")
            reject_out.write(json.dumps({"line": line_no, "reason": rejection.reason, "detail": rejection.detail,
                                         "input": text}) + "\n")

        read = send_jsonl(producer, source, on_reject, on_line=lambda line: progress.advance(task, len(line)))
    if not rejected_lines:
        reject_path.unlink()
    summary = {"read": read, **producer.stats.to_dict(),
               "rejects_file": str(reject_path) if rejected_lines else None}
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        stats = producer.stats
        typer.echo(f"read {read} events: {stats.delivered} delivered, {sum(stats.rejected.values())} rejected "
                   f"locally, {stats.failed} failed delivery")
        for reason, count in sorted(stats.rejected.items()):
            typer.echo(f"  rejected {reason}: {count}")
        if rejected_lines:
            typer.echo(f"rejected lines (with reasons) are in {reject_path}; fix them and produce that file's inputs again")
        for error in stats.errors:
            typer.echo(f"  delivery error: {error}", err=True)
    if rejected_lines or producer.stats.failed or producer.stats.errors:
        raise typer.Exit(1)


def _open_input(path: Path):
    try:
        return open(path, "rb")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


@app.command("simulate")
def simulate_cmd(
    seed: Annotated[int, typer.Option(help="Seed: the same seed (and --start) gives the same records.")] = 1,
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="Write canonical JSONL to this file (- for stdout) instead of producing to Kafka.")] = None,
    rate: Annotated[Optional[float], typer.Option(
        help="Records per second when producing; 0 = as fast as possible. [default: simulate_rate, 1000]")] = None,
    duration: Annotated[Optional[float], typer.Option(
        help="Stop after this many seconds (with --out: write --rate x this many records).")] = None,
    events: Annotated[Optional[int], typer.Option(
        help="Stop after this many records. Without --duration and --events: 10,000.")] = None,
    bad_rate: Annotated[Optional[float], typer.Option(
        help="Share of records that are deliberately invalid (dead letters). [default: simulate_bad_rate, 0.01]")] = None,
    late_rate: Annotated[Optional[float], typer.Option(
        help="Share of Wi-Fi events uploaded late by their gateway. [default: simulate_late_rate, 0.02]")] = None,
    stores: Annotated[Optional[int], typer.Option(help="Stores, each with a Wi-Fi gateway. [default: 20]")] = None,
    persons: Annotated[Optional[int], typer.Option(help="Customer population. [default: 5000]")] = None,
    start: Annotated[Optional[str], typer.Option(
        help="Simulated clock start (ISO-8601 with offset, or epoch ms). Default: early enough that the "
             "run ends before now.")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Generate realistic O2O traffic and send it through the producer SDK (or write it as JSONL).

    Stores with Wi-Fi gateways (probes, associations, portal logins, staff devices all day,
    passers-by outside), members and anonymous devices on journeys: browse online, visit, buy,
    share or complain; browse without visiting; walk in without browsing; refunds; marketing
    opt-outs. A share of records is deliberately invalid (each is rejected with a reason code, so
    the dead-letter path is exercised) and a share of Wi-Fi events arrives late. The journey mix
    comes from the simulate_* settings (README, "Simulating traffic"). Prints a summary: records,
    bad by reason, late, per type, records/s. Exit code 1 if anything good was not delivered.
    """
    import time

    from pipeline.events import parse_occurred_at
    from pipeline.simulate import Simulation
    from pipeline.traffic import SDK_EVENTS_PER_S_BOUND, bounded, mix_from_settings, plan_start_ms

    settings = settings_from(config)
    rate = settings.simulate_rate if rate is None else rate
    if rate < 0 or (events is not None and events < 0) or (duration is not None and duration <= 0):
        fail("--rate and --events must be >= 0 and --duration > 0", code=2)
    if out is not None and duration is not None:
        if not rate:
            fail("--duration with --out needs --rate > 0 (it writes rate x duration records); or give --events",
                 code=2)
        events, duration = int(rate * duration) if events is None else min(events, int(rate * duration)), None
    if events is None and duration is None:
        events = 10_000
    try:
        mix = mix_from_settings(settings, persons=persons or settings.simulate_persons,
                                stores=stores or settings.simulate_stores,
                                bad_rate=settings.simulate_bad_rate if bad_rate is None else bad_rate,
                                late_rate=settings.simulate_late_rate if late_rate is None else late_rate)
    except ValueError as exc:
        fail(f"bad simulation mix: {exc}", code=2)
    now_ms = int(time.time() * 1000)
    if start is not None:
        try:
            start_ms = parse_occurred_at(int(start) if start.strip().lstrip("-").isdigit() else start)
        except ValueError as exc:
            fail(f"--start {start!r}: {exc}", code=2)
    else:
        planned = events if events is not None else int(duration * (rate or SDK_EVENTS_PER_S_BOUND))
        start_ms = plan_start_ms(seed, mix, planned, now_ms)
    records = bounded(Simulation(seed, start_ms, mix).records(), events, duration)
    summary = _simulate_with_progress(settings, records, out, rate, events, duration, quiet=as_json)
    doc = {"seed": seed, "start_ms": start_ms, "rate": rate, **summary.to_dict()}
    if as_json:
        typer.echo(json.dumps(doc, indent=2), err=out is not None and str(out) == "-")
    else:
        echo = (lambda line: typer.echo(line, err=True)) if out is not None and str(out) == "-" else typer.echo
        echo(f"{summary.records} records in {summary.elapsed_s:.1f} s ({summary.events_per_s:,.0f}/s) to "
             f"{summary.destination}: {summary.good} good, {sum(summary.bad.values())} deliberately bad, "
             f"{summary.late} uploaded late")
        echo("  per type: " + ", ".join(f"{t} {n}" for t, n in sorted(summary.by_type.items())))
        if summary.bad:
            echo("  bad, by the reason validation gives: "
                 + ", ".join(f"{r} {n}" for r, n in sorted(summary.bad.items())))
        if summary.delivered is not None:
            echo(f"  delivered {summary.delivered} good events through the producer SDK; bad records went "
                 "straight to the ingress topics (the workers dead-letter them: `o2o dlq tail`)")
        for error in summary.errors:
            echo(f"  error: {error}")
    if summary.failed or summary.rejected or (summary.delivered is not None and summary.delivered < summary.good):
        raise typer.Exit(1)


def _simulate_with_progress(settings: Settings, records, out: Path | None, rate: float, events: int | None,
                            duration: float | None, quiet: bool):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from pipeline.traffic import produce, write_jsonl

    total = events if events is not None else duration
    with Progress(TextColumn("simulating"), BarColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  disable=quiet or not sys.stderr.isatty(), console=_stderr_console()) as progress:
        task = progress.add_task("", total=total)

        def on_progress(summary) -> None:
            done = summary.records if events is not None else summary.elapsed_s
            progress.update(task, completed=done, description=(
                f"{summary.records} records ({summary.events_per_s:,.0f}/s), "
                f"{sum(summary.bad.values())} bad, {summary.late} late"))

        if out is None:
            try:
                return produce(settings, records, rate, on_progress)
            except ConnectionError as exc:
                fail(str(exc))
        if str(out) == "-":
            summary = write_jsonl(records, sys.stdout, on_progress)
            summary.destination = "stdout"
            return summary
        try:
            with open(out, "w") as handle:
                summary = write_jsonl(records, handle, on_progress)
        except OSError as exc:
            fail(f"cannot write {out}: {exc.strerror}")
        summary.destination = str(out)
        return summary


@app.command("dry-run")
def dry_run_cmd(
    events: Annotated[str, typer.Option(
        "--events", "-e", help="JSONL file of events in canonical JSON (file order = arrival order), or - for stdin.")],
    now: Annotated[Optional[str], typer.Option(
        "--now", help="Judge future timestamps against this time (ISO-8601 with offset, or epoch ms) "
                      "instead of the wall clock; makes runs over history repeatable.")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run validation, deduplication, identity, sessions and visits over a JSONL file; no Kafka or ClickHouse.

    Test your configuration on history before going live: lines are processed in file order as
    arrival order, exactly as the agents would, and everything still open is closed at the end.
    Prints a readable summary, whose last line says where the time went (reading the lines, the
    core: identity, sessions and visits, the trigger rules, the report), or with --json one document
    with summary, dead letters (with line numbers and reason codes), persons, sessions, visits and
    triggers.
    """
    import gc
    import time

    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from pipeline.dry_run import DryRun, format_report, run_lines
    from pipeline.events import parse_occurred_at

    settings = settings_from(config)
    if now is None:
        now_ms = int(time.time() * 1000)
    else:
        try:
            now_ms = parse_occurred_at(int(now) if now.strip().lstrip("-").isdigit() else now)
        except ValueError:
            fail(f"--now {now!r} is not a time; give ISO-8601 with an offset (e.g. 2026-11-22T10:00:00+08:00) "
                 "or epoch milliseconds", code=2)
    try:
        dry_run = DryRun.from_settings(settings, now_ms)
    except ConfigError as exc:
        fail(str(exc), code=2)
    source = sys.stdin.buffer if events == "-" else _open_input(Path(events))
    total = None if events == "-" else Path(events).stat().st_size
    # A dry run makes no reference cycles (tests/unit/test_dry_run.py checks): refcounting frees
    # everything, and the cycle collector would only walk the state, which lives until the end
    # (1.8 s of a 29 s run over 1M lines). The process ends with the command.
    gc.disable()
    with source, Progress(
        TextColumn("dry run"), BarColumn(), DownloadColumn(), TimeRemainingColumn(), transient=True,
        disable=not sys.stderr.isatty() or (total is not None and total < 4_000_000), console=_stderr_console(),
    ) as progress:
        task = progress.add_task("dry run", total=total)
        report = run_lines(source, dry_run,
                           on_batch=lambda batch: progress.advance(task, sum(len(line) for _, line in batch)))
    if as_json:
        import orjson  # a few times faster than json.dumps on a report of 1M events

        sys.stdout.buffer.write(orjson.dumps(report.to_dict()) + b"\n")
    else:
        typer.echo(format_report(report, "stdin" if events == "-" else events))


@app.command("report")
def report_cmd(
    start: Annotated[Optional[str], typer.Option(
        "--from", help="Start of the period, inclusive, by event time: ISO-8601 date or date-time, offset "
                       "optional (UTC without one), e.g. 2026-11-22 or 2026-11-22T10:00+08:00. Default: the "
                       "beginning.")] = None,
    end: Annotated[Optional[str], typer.Option(
        "--to", help="End of the period, exclusive, same forms as --from. Default: no end.")] = None,
    store: Annotated[Optional[str], typer.Option("--store", help="Only this store's visits and sales.")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the KPIs of a period from ClickHouse: footfall, dwell, new vs repeat, O2O conversion,
    funnel, GMV, share and complaint rates, data heat, triggers and attributed conversions.

    Each KPI's SQL lives in sinks/kpis/ (documented there). With --json: one document with keys
    period, source and kpis (README, "o2o report"). Exit code 1 when ClickHouse cannot answer,
    2 for a bad period or bad settings.
    """
    from sinks.kpis import KpiError, Period
    from sinks.report import ReportError, fetch_report, print_report

    settings = settings_from(config)
    try:
        period = Period.parse(start, end, store)
    except KpiError as exc:
        fail(str(exc), code=2)
    try:
        doc = fetch_report(settings, period)
    except ReportError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        from rich.console import Console

        print_report(doc, Console(width=None if sys.stdout.isatty() else 120))


# --- dead letters --------------------------------------------------------------------------------

ReasonOption = Annotated[Optional[list[str]], typer.Option(
    "--reason", help="Only dead letters with this reason code (repeatable): malformed, schema, no_identity, "
                     "future_timestamp, invalid_value.")]


def _dead_letters(settings: Settings, reasons: list[str] | None, follow: bool = False):
    """(message, decoded dead letter) pairs from the dead-letter topic, filtered by reason."""
    from agents.changelog import read_to_end
    from pipeline.serde import DecodeError, EventCodec, registry_from_settings
    from pipeline.topics import DLQ
    from pipeline.validation import REASON_CODES

    unknown = sorted(set(reasons or ()) - set(REASON_CODES))
    if unknown:
        fail(f"unknown reason code {', '.join(unknown)}; use one of {', '.join(REASON_CODES)}", code=2)
    codec = EventCodec(registry_from_settings(settings))
    try:
        for message in read_to_end(settings, settings.topic(DLQ), follow=follow):
            try:
                dead = codec.decode_dead_letter(message.value())
            except DecodeError as exc:
                log.warning("skipping an unreadable record at %s[%d]@%d: %s",
                            message.topic(), message.partition(), message.offset(), exc.detail)
                continue
            if not reasons or dead["reason"] in reasons:
                yield message, dead
    except Exception as exc:  # KafkaException, TimeoutError: say what to check
        fail(f"cannot read {settings.topic(DLQ)} at {settings.kafka_bootstrap_servers}: {exc}; "
             "is the broker up and `o2o init` done?")


def _readable_dead_letter(dead: dict) -> str:
    from pipeline.events import format_occurred_at

    where = (f"{dead['source_topic']}[{dead['source_partition']}]@{dead['source_offset']}"
             if dead["source_topic"] else f"line {dead['source_offset']}")
    return (f"{format_occurred_at(dead['received_at'])}  {dead['reason']:16} {dead['event_type'] or '?':12} "
            f"{dead['event_id'] or '-':24} {where}\n    {dead['detail']}")


@dlq_app.command("tail")
def dlq_tail(
    reason: ReasonOption = None,
    limit: Annotated[int, typer.Option(help="Show at most this many (the most recent); 0 for all.")] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new dead letters as they come.")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show dead letters readably: when, reason code, type, event id, where it came from, and what to fix."""
    import base64
    from collections import deque

    settings = settings_from(config)

    def show(dead: dict) -> None:
        if as_json:
            typer.echo(json.dumps({**dead, "original": base64.b64encode(dead["original"]).decode()}))
        else:
            typer.echo(_readable_dead_letter(dead))

    if follow:
        for _, dead in _dead_letters(settings, reason, follow=True):
            show(dead)
        return
    recent: deque = deque(maxlen=limit or None)
    count = 0
    for _, dead in _dead_letters(settings, reason):
        recent.append(dead)
        count += 1
    for dead in recent:
        show(dead)
    if not as_json:
        typer.echo(f"{count} dead letters{' with reason ' + '/'.join(reason) if reason else ''}; showing {len(recent)}",
                   err=True)


@dlq_app.command("replay")
def dlq_replay(
    reason: ReasonOption = None,
    event_id: Annotated[Optional[list[str]], typer.Option("--event-id", help="Only these event ids (repeatable).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be replayed; send nothing.")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Re-send dead letters' original bytes to the ingress topic and partition they came from.

    Use it after fixing the cause (a schema update, a new setting). Replayed events go through
    ingest again: ones now valid are accepted, ones already accepted are dropped as duplicates, and
    ones still invalid come back as new dead letters. Dead letters from files (no source topic) are
    counted as not replayable.
    """
    from confluent_kafka import Producer

    settings = settings_from(config)
    producer = None if dry_run else Producer({**settings.kafka_client_config(), "enable.idempotence": True})
    replayed, not_replayable, failed = 0, 0, []
    for _, dead in _dead_letters(settings, reason):
        if event_id and dead["event_id"] not in event_id:
            continue
        if not dead["source_topic"] or not dead["original"]:
            not_replayable += 1
            continue
        replayed += 1
        if producer is not None:
            producer.produce(dead["source_topic"], value=dead["original"], partition=dead["source_partition"],
                             on_delivery=lambda err, _m: err and failed.append(str(err)))
            producer.poll(0)
    if producer is not None and producer.flush(30):
        failed.append("undelivered after 30 s")
    summary = {"replayed": replayed, "not_replayable": not_replayable, "failed": failed, "dry_run": dry_run}
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        verb = "would replay" if dry_run else "replayed"
        typer.echo(f"{verb} {replayed} dead letters; {not_replayable} not replayable (no source topic)")
        for error in failed[:5]:
            typer.echo(f"  delivery error: {error}", err=True)
    if failed:
        raise typer.Exit(1)


def _readable_trigger(trigger: dict) -> str:
    from pipeline.events import format_occurred_at

    who = trigger["member_id"] and f"member {trigger['member_id']}" or trigger["person_id"] or "-"
    payload = ", ".join(f"{k}={v}" for k, v in trigger["payload"].items() if v not in (None, "", []))
    return (f"{format_occurred_at(trigger['fired_at'])}  {trigger['rule']:20} {trigger['kind']:9} "
            f"{who:24} store {trigger['store_id'] or '-':8} {trigger['trigger_id'][:12]}\n    {payload}")


@triggers_app.command("tail")
def triggers_tail(
    rule: Annotated[Optional[list[str]], typer.Option(
        "--rule", "-r", help="Only this rule's topic (repeatable); default: every enabled rule.")] = None,
    follow: Annotated[bool, typer.Option(
        "--follow/--no-follow", "-f", help="Keep printing triggers as they arrive (default), or print what "
        "the topics hold and stop.")] = True,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print triggers as they arrive on `o2o.triggers.<rule>`, readably: fired-at (event time), rule,
    kind, member or person, store, trigger id, and the payload.

    Starts from the beginning of the topics. `--json` prints one JSON object per trigger, with the
    fields of `schemas/trigger.avsc` (times in epoch ms). Ctrl-C stops.
    """
    from agents.changelog import read_to_end
    from pipeline.serde import DecodeError, EventCodec, registry_from_settings
    from pipeline.topics import trigger_topics

    settings = settings_from(config)
    try:
        topics = trigger_topics(settings)
    except ConfigError as exc:
        fail(str(exc), code=2)
    unknown = sorted(set(rule or ()) - set(topics))
    if unknown:
        fail(f"no enabled rule named {', '.join(unknown)}; enabled rules: {', '.join(sorted(topics))}", code=2)
    wanted = [topics[name] for name in (rule or sorted(topics))]
    codec = EventCodec(registry_from_settings(settings))
    count = 0
    try:
        for message in read_to_end(settings, wanted, follow=follow):
            try:
                _, trigger = codec.decode_output(message.value())
            except DecodeError as exc:
                typer.echo(f"{message.topic()}[{message.partition()}]@{message.offset()}: undecodable: {exc}", err=True)
                continue
            count += 1
            typer.echo(json.dumps(trigger, ensure_ascii=False) if as_json else _readable_trigger(trigger))
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # KafkaException, TimeoutError: say what to check
        fail(f"cannot read {', '.join(wanted)} at {settings.kafka_bootstrap_servers}: {exc}; "
             "is the broker up and `o2o init` done?")
    if not as_json:
        typer.echo(f"{count} triggers", err=True)


@triggers_app.command("scan")
def triggers_scan(
    rule: Annotated[Optional[list[str]], typer.Option(
        "--rule", "-r", help="Only this aggregate rule (repeatable); default: every enabled aggregate rule.")] = None,
    at: Annotated[Optional[str], typer.Option(
        "--at", help="Evaluate at this event time instead of now: ISO-8601 date or date-time, offset optional "
                     "(UTC without one), e.g. 2026-11-22T12:00+08:00.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Evaluate and print; publish nothing.")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate the aggregate trigger rules (store_complaint_spike, lapsed_member) on ClickHouse once.

    Runs each rule's SQL (sinks/triggers/) at the given time, decides the rows like the worker does,
    publishes the triggers on `o2o.triggers.<rule>` and every decision on `o2o.trigger-log` (unless
    --dry-run), and prints what fired, what was suppressed or held over quiet hours, and what
    triggers_log already records as published (not published again). The worker runs the same scan
    every rules_scan_interval_s. Exit code 1 when ClickHouse or Kafka cannot answer, 2 for a bad
    --rule, --at or bad settings.
    """
    from agents.scan import PublishError, now_ms, publish
    from sinks.kpis import KpiError, parse_time
    from sinks.trigger_scan import ScanError, aggregate_rules, run_scan

    settings = settings_from(config)
    try:
        rules = settings.rules()
        aggregate_rules(rules, rule)
        moment = parse_time(at, "--at") if at is not None else now_ms()
    except (ConfigError, KpiError, ValueError) as exc:
        fail(str(exc), code=2)
    try:
        report = run_scan(settings, moment, rule, rules)
    except ScanError as exc:
        fail(str(exc))
    out = report.output
    published = False
    if not dry_run and (out.triggers or out.suppressed):
        try:
            publish(settings, out)
        except PublishError as exc:
            fail(str(exc))
        published = True
    if as_json:
        typer.echo(json.dumps(_scan_document(report, dry_run, published), indent=2, ensure_ascii=False))
        return
    _print_scan(report, dry_run)


def _scan_document(report, dry_run: bool, published: bool) -> dict:
    from pipeline.events import format_occurred_at

    out = report.output
    return {"at": format_occurred_at(report.at_ms), "at_ms": report.at_ms, "rules": report.rules,
            "dry_run": dry_run, "published": published, "rows": report.rows,
            "triggers": [t.to_dict() for t in out.triggers], "suppressed": [s.to_dict() for s in out.suppressed],
            "held": [h.to_dict() for h in out.held], "already_published": report.already_published}


def _print_scan(report, dry_run: bool) -> None:
    from pipeline.events import format_occurred_at

    out = report.output
    typer.echo(f"trigger scan at {format_occurred_at(report.at_ms)} (event time)"
               f"{' -- dry run, nothing published' if dry_run else ''}")
    for name in report.rules:
        fired = [t for t in out.triggers if t.rule == name]
        suppressed = [s for s in out.suppressed if s.trigger.rule == name]
        held = [h for h in out.held if h.trigger.rule == name]
        typer.echo(f"{name}: {report.rows.get(name, 0)} rows, {len(fired)} {'would fire' if dry_run else 'fired'}, "
                   f"{len(suppressed)} suppressed, {len(held)} held, "
                   f"{len(report.already_published.get(name, []))} already published")
        for trigger in fired:
            typer.echo("  " + _readable_trigger({**trigger.to_record(), "payload": trigger.payload}).replace(
                "\n", "\n  "))
        for s in suppressed:
            typer.echo(f"  suppressed ({s.reason}): {s.trigger.person_id or s.trigger.store_id} "
                       f"{s.trigger.trigger_id[:12]}")
        for h in held:
            typer.echo(f"  held over quiet hours until {format_occurred_at(h.release_at)}: "
                       f"{h.trigger.person_id or h.trigger.store_id} {h.trigger.trigger_id[:12]}")


@app.command("demo")
def demo_cmd(
    rate: Annotated[float, typer.Option(help="Simulated events per second (0 = as fast as possible).")] = 2000.0,
    duration: Annotated[float, typer.Option(help="Seconds of simulated traffic.")] = 60.0,
    persons: Annotated[Optional[int], typer.Option(
        help="Simulated customers. [default: simulate_persons, 5000]")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulation: the same seed, the same events.")] = 7,
    keep_running: Annotated[bool, typer.Option(
        "--keep-running", help="Leave the stack and the workers running afterwards.")] = False,
    drain_timeout: Annotated[float, typer.Option(
        help="Give up (exit code 1) if the pipeline has not drained this many seconds after the traffic.")] = 180.0,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the whole loop locally and watch it: stack, `o2o init`, workers, simulated traffic, KPIs.

    Starts the local stack, creates topics and tables, starts two workers (ingest + journey, and
    the ClickHouse sink), sends simulated O2O traffic through the producer SDK at --rate for
    --duration seconds, and shows a live view meanwhile: events/s in and out, consumer lag,
    sessions, visits, triggers by rule, dead letters by reason, the latest triggers, top stores.
    Once every event is accounted for and stored, prints the `o2o report` KPIs and where to look
    next, then stops what it started (unless --keep-running). Ctrl-C stops everything. With
    --json: the view goes to stderr and stdout gets one JSON summary (README, "The demo").
    """
    from rich.console import Console

    from pipeline.demo import DemoError, DemoOptions, dumps, run_demo
    from pipeline.stack import StackError

    if rate < 0 or duration <= 0 or drain_timeout <= 0 or (persons is not None and persons < 1):
        fail("--rate must be >= 0, --duration and --drain-timeout > 0, --persons >= 1", code=2)
    settings = settings_from(config)
    options = DemoOptions(rate=rate, duration_s=duration, persons=persons, seed=seed, keep_running=keep_running,
                          drain_timeout_s=drain_timeout, config=config)
    try:
        console = Console(stderr=as_json)
        if not console.is_terminal:  # a log or a pipe: lines, 120 columns wide
            console = Console(stderr=as_json, width=120)
        summary = run_demo(settings, options, console)
    except (StackError, DemoError, ConnectionError, ConfigError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        typer.echo("interrupted: everything the demo started is stopped", err=True)
        raise typer.Exit(130)
    if as_json:
        typer.echo(dumps(summary))


@app.command("bench")
def bench_cmd(
    events: Annotated[int, typer.Option(help="Events per contestant and layout (the same events for all).")] = 100_000,
    rate: Annotated[float, typer.Option(help="Events/s of the paced run that measures latencies.")] = 2_000,
    seconds: Annotated[float, typer.Option(help="Length of the paced run, seconds.")] = 30,
    rounds: Annotated[int, typer.Option(min=1, help=(
        "Run every contestant and layout this many times, interleaved, and report medians: a "
        "machine whose speed drifts then slows all contestants alike, and each ratio is taken "
        "within a round. About 4 minutes a round at 100,000 events."))] = 1,
    as_json: JsonOption = False,
) -> None:
    """Measure the pipeline against raw Kafka, naive faust and Quix Streams on the same events.

    On private local stacks (a fresh one per contestant and layout, started and stopped here), every
    contestant reads the same simulated events, first as one event per record, then as batched
    records: **raw_limit** (consume + Avro decode, no processing), **naive_faust** (a Table update
    per event), **quix** (Quix Streams session-window count per person) and **o2o_pipeline** (the
    real workers, until every event is in ClickHouse). Then a paced run (`--rate` for `--seconds`)
    measures p50/p99 event -> trigger and event -> ClickHouse latency. Prints events/s, the ratios, and the latencies; `--json`
    prints one document. Takes several minutes; the baselines live in `bench/`.

    On a shared machine one run can be off by a quarter: `--rounds 3` runs the contestants three
    times, interleaved, and reports each one's median run and each ratio's median over the rounds
    (every round's figures are in the `--json` document: "rounds_events_per_s", "ratios_by_round").
    """
    root = Path(__file__).resolve().parents[1]
    if not (root / "bench" / "run.py").exists():
        fail("o2o bench needs a checkout of the repository (the bench/ folder); run it from the source tree")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from bench.run import run_bench

    result = run_bench(events, rate, seconds, lambda line: typer.echo(line, err=True), rounds)
    if as_json:
        typer.echo(json.dumps(result))
        return
    several = rounds > 1
    typer.echo(f"{'contestant':14} {'layout':8} {'events/s':>10}" + (f"  (median of {rounds} rounds; each round)" if several else ""))
    for r in result["results"]:
        each = ", ".join(f"{per_round or 0:,.0f}" for per_round in r["rounds_events_per_s"])
        typer.echo(f"{r['contestant']:14} {r['layout']:8} {r['events_per_s'] or 0:>10,.0f}" + (f"  ({each})" if several else ""))
    if several:
        typer.echo(f"ratios: medians of the {rounds} rounds' own")
    for layout, ratios in result["ratios"].items():
        typer.echo(f"{layout}: " + ", ".join(f"{k} {v}x" for k, v in ratios.items() if v is not None))
    paced = result["paced"]
    trig, fresh = paced["trigger_latency_ms"], paced["clickhouse_freshness_ms"]
    typer.echo(f"paced {paced['achieved_rate']:,.0f} events/s: event -> trigger p50 {trig['p50']} ms, "
               f"p99 {trig['p99']} ms ({trig['count']} triggers); event -> ClickHouse p50 {fresh['p50']} ms, "
               f"p99 {fresh['p99']} ms")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
