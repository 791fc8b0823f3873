"""The worker's HTTP endpoint on `metrics_port`: Prometheus metrics and health probes.

    /metrics   Prometheus text format (prometheus-client's WSGI app)
    /healthz   200 {"status": "ok"} while the process serves requests (liveness)
    /readyz    200 {"status": "ready", "checks": {...}} when the broker answers a metadata request
               and, for a worker running the sink, ClickHouse answers `SELECT 1`; otherwise 503
               {"status": "not ready", "reason": "...", "checks": {name: "ok" or what failed}}

Each /readyz request runs its checks afresh (a few ms when all is well, at most ~3 s each when a
server does not answer), so point a readiness probe at it every few seconds, not more often.
"""

from __future__ import annotations

import json
import logging
import threading
from socketserver import ThreadingMixIn
from typing import Any, Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from pipeline.config import Settings

CHECK_TIMEOUT_S = 3.0
log = logging.getLogger(__name__)

Check = Callable[[], None]  # raises when the dependency is not usable


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


def broker_check(settings: Settings) -> Check:
    """A cheap metadata request (the broker list) over one long-lived admin client."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**settings.kafka_client_config(), "log_level": 0})

    def check() -> None:
        metadata = admin.list_topics(timeout=CHECK_TIMEOUT_S)
        if not metadata.brokers:
            raise ConnectionError("the metadata answer lists no brokers")

    return check


def clickhouse_check(settings: Settings) -> Check:
    """`SELECT 1` on a fresh connection (clickhouse-driver clients are not thread-safe)."""
    from clickhouse_driver import Client

    def check() -> None:
        client = Client(**settings.clickhouse_client_kwargs(), connect_timeout=CHECK_TIMEOUT_S,
                        send_receive_timeout=CHECK_TIMEOUT_S)
        try:
            if client.execute("SELECT 1") != [(1,)]:
                raise ConnectionError("SELECT 1 did not return 1")
        finally:
            client.disconnect()

    return check


def clickhouse_http_check(settings: Settings) -> Check:
    """`SELECT 1` over ClickHouse's HTTP interface, which the `events` sink inserts through."""
    from sinks.http import ClickHouseHTTP

    def check() -> None:
        client = ClickHouseHTTP(settings, timeout_s=CHECK_TIMEOUT_S)
        try:
            if client.request("/", b"SELECT 1").strip() != b"1":
                raise ConnectionError("SELECT 1 did not return 1")
        finally:
            client.close()

    return check


def health_app(checks: dict[str, Check]) -> Callable:
    """WSGI app: /healthz, /readyz (running `checks`), everything else to prometheus-client."""
    metrics = make_wsgi_app()

    def respond(start_response: Callable, status: str, doc: dict) -> list[bytes]:
        body = json.dumps(doc).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return respond(start_response, "200 OK", {"status": "ok"})
        if path == "/readyz":
            results: dict[str, str] = {}
            for name, check in checks.items():
                try:
                    check()
                    results[name] = "ok"
                except Exception as exc:  # anything that stops the check is the reason
                    results[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip()
            failed = [name for name, result in results.items() if result != "ok"]
            if failed:
                reason = "; ".join(f"{name} not reachable ({results[name]})" for name in failed)
                return respond(start_response, "503 Service Unavailable",
                               {"status": "not ready", "reason": reason, "checks": results})
            return respond(start_response, "200 OK", {"status": "ready", "checks": results})
        return metrics(environ, start_response)

    return app


def serve(settings: Settings, port: int, with_clickhouse: bool, addr: str = "0.0.0.0") -> _Server:
    """Serve /metrics, /healthz and /readyz on `port` from a daemon thread; returns the server."""
    checks = {"broker": broker_check(settings)}
    if with_clickhouse:
        checks["clickhouse"] = clickhouse_check(settings)
        checks["clickhouse_http"] = clickhouse_http_check(settings)
    server = make_server(addr, port, health_app(checks), _Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
