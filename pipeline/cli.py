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
)
stack_app = typer.Typer(help="Start, inspect and stop the local broker and ClickHouse (for laptops and tests).",
                        no_args_is_help=True)
dlq_app = typer.Typer(help="Inspect and replay dead letters (rejected input, with reasons).", no_args_is_help=True)
triggers_app = typer.Typer(help="Watch trigger topics and run aggregate trigger rules.", no_args_is_help=True)
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
    """Create the Kafka topics and the ClickHouse schema. Idempotent: safe to run again."""
    not_yet(3)


@app.command("worker")
def worker_cmd(config: ConfigOption = None) -> None:
    """Run a faust worker with all agents (ingest, identity and sessions, triggers, ClickHouse sink)."""
    not_yet(4)


@app.command("produce")
def produce_cmd(config: ConfigOption = None) -> None:
    """Send events from a JSONL file (or stdin) to the ingress topics."""
    not_yet(3)


@app.command("simulate")
def simulate_cmd(config: ConfigOption = None) -> None:
    """Generate realistic O2O traffic (stores, Wi-Fi gateways, members, journeys)."""
    not_yet(7)


@app.command("dry-run")
def dry_run_cmd(config: ConfigOption = None) -> None:
    """Run validation, identity, sessions, visits and triggers over a JSONL file, no Kafka or ClickHouse."""
    not_yet(4)


@app.command("report")
def report_cmd(config: ConfigOption = None) -> None:
    """Print the KPIs (footfall, conversion, funnel, GMV, share and complaint rates) from ClickHouse."""
    not_yet(6)


@triggers_app.command("tail")
def triggers_tail(config: ConfigOption = None) -> None:
    """Print triggers as they arrive."""
    not_yet(5)


@triggers_app.command("scan")
def triggers_scan(config: ConfigOption = None) -> None:
    """Evaluate the aggregate trigger rules on ClickHouse once."""
    not_yet(5)


@app.command("demo")
def demo_cmd(config: ConfigOption = None) -> None:
    """Start everything locally, simulate traffic, show it live, print the KPIs."""
    not_yet(7)


@app.command("bench")
def bench_cmd(config: ConfigOption = None) -> None:
    """Measure the pipeline against raw Kafka, naive faust and Quix Streams on the same events."""
    not_yet(7)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
