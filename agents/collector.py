"""The HTTP collector: an aiohttp server in front of the ingress topics (`o2o collector`).

Thin I/O around `pipeline.collect` (parsing, keys, rate limits, gateway formats, stats) and the
producer SDK (`pipeline.producer.EventProducer`: validation, hashing, batching, delivery).

The 202 guarantee: a request is answered 202 only after the broker has acknowledged every event it
accepted (idempotent producer, acks=all). Events wait at most `collector_linger_ms` to share a batch
record with other requests' events. The events accepted but not yet acknowledged are bounded by
`collector_buffer_events`: a request that would pass the bound gets 503 with Retry-After. Nothing is
acknowledged to a client before it is on Kafka, so a crash loses nothing that got a 202; a client
whose request failed (503, timeout, connection lost) sends it again, and the pipeline drops the
copies by event_id. SIGTERM: stop listening, let in-flight requests finish (up to
`collector_drain_timeout_s`), flush the producer, exit 0.

Everything runs on the event loop's thread, including delivery reports (served by `_pump`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from typing import Any, Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client import Counter as PromCounter

from pipeline.collect import gateway, meraki
from pipeline.collect.body import BodyError, decode_events, parse_object
from pipeline.collect.intake import admit, type_label
from pipeline.collect.keys import AuthError, KeyRing
from pipeline.collect.ratelimit import RateLimiter
from pipeline.collect.sightings import Translation
from pipeline.collect.stats import CollectorStats
from pipeline.collect.stores import StoreMap, StoreMapError
from pipeline.config import ConfigError, Settings
from pipeline.privacy import IdentifierHasher
from pipeline.producer import EventProducer
from pipeline.validation import Rejection

log = logging.getLogger("o2o.collector")

BUFFER_RETRY_AFTER_S = 1
DELIVERY_RETRY_AFTER_S = 5


class HttpError(Exception):
    """Answered as JSON `{"error": code, "message": message}` with `status` (and Retry-After if set)."""

    def __init__(self, status: int, code: str, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after_s = status, code, message, retry_after_s


class Metrics:
    def __init__(self, capacity: int) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = PromCounter("o2o_collector_requests", "HTTP requests by endpoint and status",
                                    ["endpoint", "status"], registry=r)
        self.latency = Histogram("o2o_collector_request_seconds", "Request latency", ["endpoint"], registry=r,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
        self.accepted = PromCounter("o2o_collector_events_accepted", "Events acknowledged by the broker",
                                    ["source", "event_type"], registry=r)
        self.rejected = PromCounter("o2o_collector_events_rejected", "Events refused, by dead-letter reason code",
                                    ["source", "reason"], registry=r)
        self.failed = PromCounter("o2o_collector_events_failed",
                                  "Events whose delivery failed or was not confirmed in time (answered 503)",
                                  registry=r)
        self.unknown_store = PromCounter("o2o_collector_unknown_store_sightings",
                                         "Gateway sightings skipped: no store mapped for their AP or network",
                                         ["source"], registry=r)
        self.buffer = Gauge("o2o_collector_buffer_events", "Events accepted, not yet acknowledged", registry=r)
        capacity_gauge = Gauge("o2o_collector_buffer_capacity_events", "collector_buffer_events", registry=r)
        capacity_gauge.set(capacity)


class InFlight:
    """Events handed to the producer and not yet acknowledged, against `collector_buffer_events`."""

    def __init__(self, capacity: int, gauge: Gauge) -> None:
        self.capacity, self.count, self._gauge = capacity, 0, gauge

    def reserve(self, events: int) -> bool:
        if self.count and self.count + events > self.capacity:
            return False
        self._move(events)
        return True

    def release(self, events: int) -> None:
        self._move(-events)

    def _move(self, events: int) -> None:
        self.count += events
        self._gauge.set(self.count)


class Delivery:
    """One request's wait for the broker: resolved when every event it sent is acknowledged or failed."""

    def __init__(self, in_flight: InFlight) -> None:
        self.future: asyncio.Future = asyncio.get_running_loop().create_future()
        self.in_flight = in_flight
        self.expected: int | None = None
        self.reported = 0
        self.error: str | None = None

    def on_delivery(self, error: str | None, count: int) -> None:
        self.in_flight.release(count)
        self.reported += count
        if error is not None and self.error is None:
            self.error = error
        self._check()

    def seal(self, expected: int) -> None:
        self.expected = expected
        self._check()

    def _check(self) -> None:
        if self.expected is not None and self.reported >= self.expected and not self.future.done():
            self.future.set_result(None)


class Collector:
    def __init__(self, settings: Settings, producer: EventProducer, keys: KeyRing, stores: StoreMap) -> None:
        self.settings = settings
        self.producer = producer
        self.keys = keys
        self.stores = stores
        self.hasher = IdentifierHasher(settings.effective_hash_secret)
        self.limiter = RateLimiter()
        self.stats = CollectorStats(int(time.time() * 1000))
        self.metrics = Metrics(settings.collector_buffer_events)
        self.in_flight = InFlight(settings.collector_buffer_events, self.metrics.buffer)
        self.meraki_secret = settings.meraki_secret.get_secret_value() if settings.meraki_secret else None
        self.draining = False
        self._wake = asyncio.Event()

    # --- endpoints --------------------------------------------------------------------------

    async def post_events(self, request: web.Request) -> web.Response:
        key = self._authenticate(request)
        body = await self._read(request)
        try:
            items = decode_events(body, None, self.settings.collector_max_body_bytes)
        except BodyError as exc:
            raise HttpError(exc.status, _status_code(exc.status), exc.message) from None
        self._check_count(len(items))
        self._take_tokens(key, len(items))
        events, rejections = [], []
        for index, item in enumerate(items):
            admitted = admit(item, key)
            if type(admitted) is Rejection:
                rejections.append((index, admitted, type_label(item)))
            else:
                events.append((index, admitted))
        return await self._send(key.source, events, rejections)

    async def post_generic(self, request: web.Request) -> web.Response:
        key = self._authenticate(request)
        payload = self._parse_object(await self._read(request), "generic gateway")
        observations = payload.get("observations")
        self._check_count(len(observations) if isinstance(observations, list) else 0)
        self._take_tokens(key, len(observations) if isinstance(observations, list) else 1)
        try:
            translation = gateway.translate(payload, key.source, self.hasher)
        except gateway.PayloadError as exc:
            raise HttpError(400, "bad_payload", str(exc)) from None
        events, rejections = [], [(i, r, "wifi_checkin") for i, r in translation.rejections]
        for index, event in translation.events:
            admitted = admit(event, key)
            if type(admitted) is Rejection:
                rejections.append((index, admitted, "wifi_checkin"))
            else:
                events.append((index, admitted))
        return await self._send(key.source, events, rejections)

    async def get_meraki(self, request: web.Request) -> web.Response:
        validator = self.settings.meraki_validator
        if not validator:
            raise HttpError(404, "not_configured", "no Meraki validator is configured; set O2O_MERAKI_VALIDATOR "
                                                   "(meraki_validator) to the validator shown in the Meraki dashboard")
        return web.Response(text=validator, content_type="text/plain")

    async def post_meraki(self, request: web.Request) -> web.Response:
        payload = self._parse_object(await self._read(request), "Meraki Scanning API")
        try:
            meraki.check_secret(payload, self.meraki_secret)
            translation = meraki.translate(payload, self.stores, self.hasher)
        except meraki.SecretError as exc:
            raise HttpError(403, "forbidden", str(exc)) from None
        except meraki.PayloadError as exc:
            raise HttpError(400, "bad_payload", str(exc)) from None
        self._count_unknown(translation)
        rejections = [(i, r, "wifi_checkin") for i, r in translation.rejections]
        return await self._send(meraki.SOURCE_ID, translation.events, rejections,
                                {"unknown_stores": translation.unknown_report()})

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats.to_dict())

    async def get_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def get_ready(self, request: web.Request) -> web.Response:
        if self.draining:
            raise HttpError(503, "draining", "the collector is shutting down; send to another instance")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._broker_metadata)
        except Exception as exc:  # KafkaException and friends: the broker did not answer
            raise HttpError(503, "broker_unreachable", f"the broker at {self.settings.kafka_bootstrap_servers} "
                                                       f"does not answer: {exc}", retry_after_s=5) from None
        return web.json_response({"status": "ready", "buffer_events": self.in_flight.count})

    async def get_metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    # --- steps ------------------------------------------------------------------------------

    def _authenticate(self, request: web.Request):
        try:
            return self.keys.authenticate(request.headers.get("Authorization"))
        except AuthError as exc:
            raise HttpError(401, "unauthorized", str(exc)) from None

    async def _read(self, request: web.Request) -> bytes:
        """The body, decompressed: aiohttp undoes a declared Content-Encoding (gzip, deflate) while
        reading, within client_max_size; `pipeline.collect.body` still unzips undeclared gzip."""
        limit = self.settings.collector_max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise HttpError(413, "too_large", f"the body is {request.content_length} bytes; the limit is {limit} "
                                              "(collector_max_body_bytes); send fewer events per request")
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise HttpError(413, "too_large", f"the body is larger than {limit} bytes once decompressed "
                                              "(collector_max_body_bytes); send fewer events per request") from None

    def _parse_object(self, body: bytes, what: str) -> dict[str, Any]:
        try:
            return parse_object(body, None, self.settings.collector_max_body_bytes, what)
        except BodyError as exc:
            raise HttpError(exc.status, _status_code(exc.status), exc.message) from None

    def _check_count(self, count: int) -> None:
        limit = self.settings.collector_max_events_per_request
        if count > limit:
            raise HttpError(413, "too_many_events", f"the request holds {count} events; the limit is {limit} "
                                                    "(collector_max_events_per_request); split it")

    def _take_tokens(self, key, count: int) -> None:
        wait_s = self.limiter.take(key.label, key.rate_per_s, key.burst, count, time.monotonic())
        if wait_s:
            raise HttpError(429, "rate_limited", f"over this key's rate limit ({key.rate_per_s:g} events/s, "
                                                 f"burst {key.burst}); retry after the Retry-After seconds",
                            retry_after_s=max(1, math.ceil(wait_s)))

    async def _send(self, source: str, events: list[tuple[int, dict[str, Any]]],
                    rejections: list[tuple[int, Rejection, str]], extra: dict[str, Any] | None = None) -> web.Response:
        if not self.in_flight.reserve(len(events)):
            raise HttpError(503, "buffer_full", f"{self.in_flight.count} events are waiting for the broker "
                                                f"(collector_buffer_events = {self.in_flight.capacity}); retry later",
                            retry_after_s=BUFFER_RETRY_AFTER_S)
        delivery = Delivery(self.in_flight)
        sent: Counter = Counter()
        for index, event in events:
            rejection = self.producer.send(event, delivery.on_delivery)
            if rejection is None:
                sent[event["event_type"]] += 1
            else:
                rejections.append((index, rejection, type_label(event)))
        accepted = sum(sent.values())
        self.in_flight.release(len(events) - accepted)
        delivery.seal(accepted)
        self._wake.set()
        if accepted:
            await self._await_delivery(delivery, accepted)
        self._count(source, sent, rejections)
        rejections.sort(key=lambda item: item[0])
        body = {"accepted": accepted, "rejected": len(rejections),
                "rejections": [_rejection_json(index, rejection) for index, rejection, _ in rejections]}
        return web.json_response({**body, **(extra or {})}, status=202)

    async def _await_delivery(self, delivery: Delivery, accepted: int) -> None:
        timeout_s = self.settings.collector_ack_timeout_ms / 1000
        try:
            await asyncio.wait_for(asyncio.shield(delivery.future), timeout_s)
        except asyncio.TimeoutError:
            self.metrics.failed.inc(accepted)
            raise HttpError(503, "not_acknowledged", f"the broker did not acknowledge the events within {timeout_s:g} s; "
                                                     "send the request again (duplicates are dropped by event_id)",
                            retry_after_s=DELIVERY_RETRY_AFTER_S) from None
        if delivery.error is not None:
            self.metrics.failed.inc(accepted)
            raise HttpError(503, "delivery_failed", f"the broker refused the events ({delivery.error}); send the "
                                                    "request again (duplicates are dropped by event_id)",
                            retry_after_s=DELIVERY_RETRY_AFTER_S)

    def _count(self, source: str, sent: Counter, rejections: list[tuple[int, Rejection, str]]) -> None:
        self.stats.count_accepted(source, sent)
        for event_type, n in sent.items():
            self.metrics.accepted.labels(source, event_type).inc(n)
        for _, rejection, event_type in rejections:
            self.stats.count_rejected(source, event_type, rejection.reason)
            self.metrics.rejected.labels(source, rejection.reason).inc()

    def _count_unknown(self, translation: Translation) -> None:
        if not translation.unknown_store:
            return
        self.stats.count_unknown(translation)
        self.metrics.unknown_store.labels(meraki.SOURCE_ID).inc(translation.unknown_store)
        log.warning("meraki post: %d sightings skipped, no store mapped for AP(s) %s / network(s) %s; add them "
                    "to meraki_store_map", translation.unknown_store, ", ".join(sorted(translation.unknown_aps)) or "-",
                    ", ".join(sorted(translation.unknown_networks)) or "-")

    def _broker_metadata(self) -> None:
        from confluent_kafka.admin import AdminClient

        AdminClient(self.settings.kafka_client_config()).list_topics(timeout=3)

    # --- delivery reports and lifecycle ----------------------------------------------------------

    async def pump(self) -> None:
        """Serve delivery reports and send lingering batches while anything is in flight."""
        while True:
            self.producer.poll(0)
            if self.in_flight.count:
                await asyncio.sleep(0.001)
            else:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass

    def flush(self) -> int:
        remaining = self.producer.flush(self.settings.collector_drain_timeout_s)
        if remaining:
            log.error("%d records were not acknowledged by the broker at shutdown", remaining)
        return remaining


@web.middleware
async def _errors_and_metrics(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    collector: Collector = request.app["collector"]
    endpoint = request.match_info.route.name or "other"
    started = time.perf_counter()
    try:
        response = await handler(request)
    except HttpError as exc:
        headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
        response = web.json_response({"error": exc.code, "message": exc.message}, status=exc.status, headers=headers)
    except web.HTTPException as exc:  # aiohttp's own (404, 405): JSON like ours
        response = web.json_response({"error": exc.reason.lower().replace(" ", "_"), "message": exc.text or exc.reason},
                                     status=exc.status)
    collector.metrics.requests.labels(endpoint, str(response.status)).inc()
    collector.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
    collector.stats.count_request(endpoint, response.status)
    return response


def _rejection_json(index: int, rejection: Rejection) -> dict[str, Any]:
    return {"index": index, "event_id": rejection.event_id, "reason": rejection.reason, "detail": rejection.detail}


def _status_code(status: int) -> str:
    return {400: "bad_request", 413: "too_large"}.get(status, "error")


def build_app(settings: Settings) -> web.Application:
    """The aiohttp application; raises ConfigError (keys, store map) or ConnectionError (broker)."""
    keys = KeyRing.from_settings(settings)
    try:
        stores = StoreMap.from_dict(settings.meraki_store_map_data() or {})
    except StoreMapError as exc:
        raise ConfigError(f"meraki_store_map {settings.meraki_store_map}: {exc}") from None
    app = web.Application(middlewares=[_errors_and_metrics], client_max_size=settings.collector_max_body_bytes)
    app.cleanup_ctx.append(lambda app: _lifecycle(app, settings, keys, stores))
    app.on_shutdown.append(_start_draining)
    routes = [
        web.post("/v1/events", _route("post_events"), name="events"),
        web.get("/v1/gateways/meraki", _route("get_meraki"), name="meraki"),
        web.post("/v1/gateways/meraki", _route("post_meraki"), name="meraki"),
        web.post("/v1/gateways/generic", _route("post_generic"), name="generic"),
        web.get("/v1/stats", _route("get_stats"), name="stats"),
        web.get("/healthz", _route("get_health"), name="healthz"),
        web.get("/readyz", _route("get_ready"), name="readyz"),
        web.get("/metrics", _route("get_metrics"), name="metrics"),
    ]
    for route in routes:
        app.router.add_route(route.method, route.path, route.handler, name=route.kwargs.get("name"))
    return app


def _route(method: str):
    async def handler(request: web.Request) -> web.StreamResponse:
        return await getattr(request.app["collector"], method)(request)

    return handler


async def _lifecycle(app: web.Application, settings: Settings, keys: KeyRing, stores: StoreMap):
    producer = EventProducer(settings, linger_ms=settings.collector_linger_ms)
    collector = Collector(settings, producer, keys, stores)
    app["collector"] = collector
    pump = asyncio.create_task(collector.pump())
    if not len(keys):
        log.warning("no API keys configured (collector_api_keys): /v1/events and /v1/gateways/generic answer 401")
    log.info("collector listening on http://%s:%d", settings.collector_host, settings.collector_port)
    yield
    remaining = collector.flush()
    pump.cancel()
    log.info("collector stopped: %d records unacknowledged", remaining)


async def _start_draining(app: web.Application) -> None:
    collector: Collector = app["collector"]
    collector.draining = True
    log.info("draining: %d events waiting for the broker", collector.in_flight.count)


def run_collector(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT, then drain in-flight requests and flush. Errors as in `build_app`."""
    app = build_app(settings)
    web.run_app(app, host=settings.collector_host, port=settings.collector_port, access_log=None, print=None,
                shutdown_timeout=settings.collector_drain_timeout_s, handle_signals=True)
