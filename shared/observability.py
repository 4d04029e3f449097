"""What operations can see of a Kring service: Prometheus metrics and OpenTelemetry traces.

Metrics (on only with KRING_METRICS_PORT): a listener of its own, `KRING_METRICS_HOST`
(default 127.0.0.1) : `KRING_METRICS_PORT`, answering `GET /metrics` and nothing else; the
service's public HTTP port has no /metrics (docs/SECURITY.md: the deployment lets only its
Prometheus reach the metrics port). What it exports:
- FastStream's Prometheus middleware: `faststream_received_messages_total`,
  `…_received_processed_messages_total{status}` (acked, nacked = requeued, …),
  `…_received_processed_messages_duration_seconds`, `faststream_published_messages_total`,
  … per handler (`<exchange>.<routing key>`) and `app_name` = the service;
- HTTP: `kring_http_requests_total{method, route, status}` and
  `kring_http_request_duration_seconds{method, route}`, by route TEMPLATE
  (`/cases/{case_id}`), never the path a client sent;
- Kring's own, from the delivery policy: `kring_transient_retries_total{queue}`,
  `kring_dead_lettered_total{queue, cause}` (cause: invalid | failed);
- Kring's gauges, computed when scraped (at most once every `METRICS_CACHE_SECONDS`, each
  source bounded by a timeout; a source that fails keeps its last value and counts in
  `kring_metrics_source_errors_total{source}`): `kring_outbox_pending_events{store}`,
  `kring_outbox_oldest_event_age_seconds{store}`, `kring_queue_messages{queue}`,
  `kring_queue_consumers{queue}`, `kring_dlq_messages{queue}` for every subscriber queue,
  and what a service registers with `KringService.gauge` (waiting cases, overdue
  follow-ups, the 60-day share at risk).
Labels are queue, store, route, exchange and routing-key names and closed codes: never a
case id, a token or anything a person wrote.

Traces (on only with KRING_OTLP_ENDPOINT, or a provider installed by `install_tracer_provider`):
FastStream's telemetry middleware (a span per message consumed and published, the W3C
`traceparent` header carried between services), the FastAPI and pymongo instrumentations.
An event waits in its aggregate's outbox and is published later by the relay: the context
of the span that wrote it is stored beside it (shared.messaging.publisher.stored_form) and
the relay publishes under it, so one trace follows a command through every service as far
as messages carry it. The case id (pseudonymous, `messaging.message.conversation_id`) is an
attribute of spans on the internal events exchange only; spans of the intake, replies and
partner exchanges carry none, and messages to outside parties (replies, partner) carry no
trace headers. HTTP spans keep the route template, status and method: the path, query,
client address and user agent are redacted when the span starts. Off, nothing is installed:
no middleware, no listener, no exporter.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sized
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from faststream import BaseMiddleware
from faststream.prometheus.middleware import PrometheusMiddleware
from faststream.rabbit.opentelemetry.provider import RabbitTelemetrySettingsProvider
from faststream.rabbit.prometheus.provider import RabbitMetricsSettingsProvider
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logging import get_logger

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from shared.runtime import KringService
    from shared.settings import KringSettings

log = get_logger("kring.observability")

disable_created_metrics()  # no `…_created` series beside every counter: half the lines, nothing alerts need
METRICS_CACHE_SECONDS = 5.0  # gauges from the store and the broker: at most this often
SOURCE_TIMEOUT_SECONDS = 5.0
TRACE_HEADERS = ("traceparent", "tracestate", "baggage")
_PROPAGATOR = TraceContextTextMapPropagator()


# --- traces --------------------------------------------------------------------------------

_installed: "TracerProvider | None" = None
_otlp: dict[str, "TracerProvider"] = {}


def install_tracer_provider(provider: "TracerProvider | None") -> None:
    """Services built from now on in this process trace to `provider` (tests: an in-memory
    exporter), which gets the HTTP redaction too; None: back to the settings' choice."""
    global _installed
    if provider is not None:
        provider.add_span_processor(RedactHttp())
    _installed = provider


def tracer_provider_for(settings: "KringSettings") -> "TracerProvider | None":
    """The provider a service traces to, or None: tracing off."""
    if _installed is not None:
        return _installed
    if not settings.otlp_endpoint:
        return None
    if settings.otlp_endpoint not in _otlp:  # one exporter per process and endpoint
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": f"kring-{settings.service_name}"}))
        provider.add_span_processor(RedactHttp())
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint)))
        _otlp[settings.otlp_endpoint] = provider
    return _otlp[settings.otlp_endpoint]


REDACTED_HTTP = (
    "http.target", "http.url", "url.full", "url.path", "url.query", "http.client_ip", "client.address",
    "client.port", "net.peer.ip", "net.peer.port", "net.sock.peer.addr", "net.sock.peer.port",
    "network.peer.address", "network.peer.port", "http.user_agent", "user_agent.original", "http.host",
    "server.address",
)  # fmt: skip


def redact_http(span: Any, scope: Any = None) -> None:
    """What the ASGI instrumentation puts on a server span that may name a person or hold a
    credential (a path with a family's token, a query, the client's address, the user agent),
    overwritten before anything can export it. The route template (`http.route`, the span's
    name) comes later and stays. The FastAPI instrumentation's server_request_hook (it sets
    the request's attributes again after the span started)."""
    attributes = getattr(span, "attributes", None) or {}
    for key in REDACTED_HTTP:
        if key in attributes:
            span.set_attribute(key, "(redacted)")


class RedactHttp(SpanProcessor):
    """`redact_http` on every span as it starts (a span processor of each Kring provider)."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        redact_http(span)


def current_trace_headers() -> dict[str, str]:
    """The W3C trace context of the span running now ({} when none is: tracing off)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier


@contextmanager
def continued_trace(headers: dict[str, str] | None) -> Any:
    """Run the block in the trace `headers` (current_trace_headers) name, if any."""
    if not headers:
        yield
        return
    token = otel_context.attach(_PROPAGATOR.extract(headers))
    try:
        yield
    finally:
        otel_context.detach(token)


class KringTelemetrySettings(RabbitTelemetrySettingsProvider):
    """FastStream's span attributes, with the case id (the correlation id) kept only on the
    internal events exchange: a bureau chooses a command's correlation id, and partner spans
    carry no identifier of a case."""

    def __init__(self, internal_exchange: str) -> None:
        super().__init__()
        self.internal_exchange = internal_exchange

    def get_consume_attrs_from_message(self, msg: Any) -> dict[str, Any]:
        attributes = super().get_consume_attrs_from_message(msg)
        if msg.raw_message.exchange != self.internal_exchange:
            attributes.pop("messaging.message.conversation_id", None)
        return attributes

    def get_publish_attrs_from_cmd(self, cmd: Any) -> dict[str, Any]:
        attributes = super().get_publish_attrs_from_cmd(cmd)
        if cmd.exchange.name != self.internal_exchange:
            attributes.pop("messaging.message.conversation_id", None)
        return attributes


def telemetry_middleware(provider: "TracerProvider", internal_exchange: str) -> Any:
    from faststream.opentelemetry.middleware import TelemetryMiddleware

    settings = KringTelemetrySettings(internal_exchange)
    return TelemetryMiddleware(settings_provider_factory=lambda _: settings, tracer_provider=provider)


class InternalTraceHeaders:
    """Broker middleware (innermost): trace headers only on the exchanges inside Kring;
    what goes to bureaus and funders (replies, partner, a replay into a funder's queue)
    carries none."""

    def __init__(self, inside: tuple[str, ...]) -> None:
        self.inside = inside

    def __call__(self, msg: Any, /, *, context: Any) -> BaseMiddleware:
        return _InternalTraceHeadersScope(msg, context=context, inside=self.inside)


class _InternalTraceHeadersScope(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: Any, inside: tuple[str, ...]) -> None:
        super().__init__(msg, context=context)
        self.inside = inside

    async def publish_scope(self, call_next: Callable[[Any], Awaitable[Any]], cmd: Any) -> Any:
        if cmd.exchange.name not in self.inside and cmd.headers:
            for name in TRACE_HEADERS:
                cmd.headers.pop(name, None)
        return await call_next(cmd)


# --- metrics -------------------------------------------------------------------------------


class KringMetricsSettings(RabbitMetricsSettingsProvider):
    """FastStream's handler/destination label `<exchange>.<routing key>`, with the routing keys
    of the replies and partner exchanges cut to the event's name (they go on with an
    organisation, a funder and a region: many series, nothing operations needs per label)."""

    def __init__(self, outside: tuple[str, ...]) -> None:
        super().__init__()
        self.outside = outside

    def get_consume_attrs_from_message(self, msg: Any) -> Any:
        attributes = super().get_consume_attrs_from_message(msg)
        exchange = msg.raw_message.exchange or "default"
        if exchange in self.outside:
            attributes["destination_name"] = f"{exchange}.{_event_name(msg.raw_message.routing_key)}"
        return attributes

    def get_publish_destination_name_from_cmd(self, cmd: Any) -> str:
        if cmd.exchange.name in self.outside:
            return f"{cmd.exchange.name}.{_event_name(cmd.destination)}"
        return super().get_publish_destination_name_from_cmd(cmd)


def _event_name(routing_key: str | None) -> str:
    return ".".join((routing_key or "").split(".")[:2])


Source = Callable[[], Awaitable[Any]]


class Metrics:
    """One service's registry (its own: several services in one test process never clash)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        r = self.registry
        self.transient_retries = Counter(
            "kring_transient_retries_total", "Handler runs retried in-process after a transient fault (database away)", ["queue"], registry=r
        )
        self.dead_lettered = Counter(
            "kring_dead_lettered_total", "Messages this service put in a DLQ: invalid, or failed on every delivery", ["queue", "cause"], registry=r
        )
        self.http_requests = Counter("kring_http_requests_total", "HTTP requests answered, by route template", ["method", "route", "status"], registry=r)
        self.http_duration = Histogram("kring_http_request_duration_seconds", "HTTP request duration by route template", ["method", "route"], registry=r)
        self.outbox_pending = Gauge("kring_outbox_pending_events", "Events stored but not yet published, per store", ["store"], registry=r)
        self.outbox_oldest = Gauge(
            "kring_outbox_oldest_event_age_seconds", "Age of the oldest event waiting in a store's outboxes (0: none)", ["store"], registry=r
        )
        self.queue_messages = Gauge("kring_queue_messages", "Messages ready in a subscriber queue of this service", ["queue"], registry=r)
        self.queue_consumers = Gauge("kring_queue_consumers", "Consumers on a subscriber queue of this service (all replicas)", ["queue"], registry=r)
        self.dlq_messages = Gauge("kring_dlq_messages", "Messages in the DLQ of a subscriber queue of this service", ["queue"], registry=r)
        self.source_errors = Counter("kring_metrics_source_errors_total", "Gauge sources that failed or timed out when scraped", ["source"], registry=r)
        self.collected = Gauge("kring_metrics_collected_timestamp_seconds", "When the gauges were last computed", registry=r)
        self._sources: list[tuple[str, Source]] = []
        self._last = 0.0
        self._lock = asyncio.Lock()

    def source(self, name: str, compute: Source) -> None:
        self._sources.append((name, compute))

    def gauge(self, name: str, documentation: str, compute: Source) -> None:
        """A gauge computed when scraped; `compute` returns a number, or a collection whose
        size is the value (e.g. the list of waiting cases)."""
        metric = Gauge(name, documentation, registry=self.registry)

        async def update() -> None:
            value = await compute()
            metric.set(len(value) if isinstance(value, Sized) else float(value))

        self.source(name, update)

    async def refresh(self) -> None:
        async with self._lock:  # concurrent scrapes compute once
            if time.monotonic() - self._last < METRICS_CACHE_SECONDS:
                return
            for name, compute in self._sources:
                try:
                    await asyncio.wait_for(compute(), SOURCE_TIMEOUT_SECONDS)
                except Exception as error:
                    self.source_errors.labels(name).inc()
                    log.warning("metrics source failed", source=name, error=type(error).__name__)
            self._last = time.monotonic()
            self.collected.set(time.time())

    def invalidate(self) -> None:
        """The next scrape computes the gauges afresh (tests)."""
        self._last = 0.0

    async def exposition(self) -> bytes:
        await self.refresh()
        return generate_latest(self.registry)

    def prometheus_middleware(self, outside: tuple[str, ...]) -> PrometheusMiddleware:  # type: ignore[type-arg]
        settings = KringMetricsSettings(outside)
        return PrometheusMiddleware(settings_provider_factory=lambda _: settings, registry=self.registry, app_name=self.service)


def broker_sources(metrics: Metrics, service: "KringService") -> None:
    """The gauges of the outbox and of this service's queues and DLQs."""

    async def outbox() -> None:
        now = service.relay.clock()
        for store in service.stores.values():
            metrics.outbox_pending.labels(store.name).set(await store.outbox_size())
            oldest = await store.outbox_oldest()
            metrics.outbox_oldest.labels(store.name).set(0.0 if oldest is None else max(0.0, (now - oldest).total_seconds()))

    channel: Any = None

    async def queues() -> None:
        nonlocal channel
        connection = getattr(service.broker, "_connection", None)  # the broker's own connection
        if connection is None:
            return
        if channel is None or channel.is_closed:
            channel = await connection.channel()
        for subscriber in service.broker.subscribers:
            name = subscriber.queue.name
            for queue, gauges in ((name, (metrics.queue_messages, metrics.queue_consumers)), (f"{name}.dlq", (metrics.dlq_messages, None))):
                underlay = await channel.get_underlay_channel()
                try:
                    declared = await underlay.queue_declare(queue, passive=True)
                except Exception:  # not declared (yet): the channel is closed, open another
                    channel = await connection.channel()
                    continue
                gauges[0].labels(name).set(declared.message_count)
                if gauges[1] is not None:
                    gauges[1].labels(name).set(declared.consumer_count)

    metrics.source("outbox", outbox)
    metrics.source("queues", queues)


class MetricsListener:
    """`GET /metrics` on a port of its own, in the service's event loop (the gauges read the
    store and the broker asynchronously). Anything else: 404; one request per connection."""

    def __init__(self, metrics: Metrics, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=8192)
        self.port = self._server.sockets[0].getsockname()[1]  # port 0: the one the system gave

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
            path = rest.split(" ")[0].split("?")[0]
            if method == "GET" and path == "/metrics":
                status, kind, body = "200 OK", CONTENT_TYPE_LATEST, await self.metrics.exposition()
            else:
                status, kind, body = "404 Not Found", "text/plain; charset=utf-8", b"not found\n"
            writer.write(
                f"HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {len(body)}\r\n"
                f"cache-control: no-store\r\nconnection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


class HttpMetrics:
    """ASGI middleware: every answered request counted by method, route template and status."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            route = getattr(scope.get("route"), "path", None) or "(unmatched)"
            method = scope.get("method", "GET") if route != "(unmatched)" else "(any)"
            self.metrics.http_requests.labels(method, route, str(status)).inc()
            self.metrics.http_duration.labels(method, route).observe(time.perf_counter() - started)
