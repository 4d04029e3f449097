"""The common runtime of a Kring service: broker, database, relay, health, lifecycle.

Each service has ONE wiring point (`services/<name>/app.py`) that builds a
`KringService`, registers its subscribers on `service.broker` (shared.messaging.
consumer.subscribe) and its stores (`aggregate_store`), and returns
`service.http_app(*routers)` (a FastAPI app, see shared.http).
Nothing connects until the app starts. Given `storage=MemoryStorage()` (shared.memory) the
stores live in memory, for unit tests with FastStream's TestRabbitBroker.
"""

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from fastapi import APIRouter, FastAPI
from faststream.rabbit import Channel, RabbitBroker
from pydantic import BaseModel
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared.audit import AUDIT, AuditLog
from shared.contract.events import Event
from shared.errors import InsecureConfiguration
from shared.http import create_http_app
from shared.logging import get_logger
from shared.memory import MemoryStorage
from shared.messaging import asyncapi
from shared.messaging.consumer import DeliveryPolicy, subscribe
from shared.messaging.publisher import EventPublisher
from shared.messaging.topology import Topology
from shared.observability import (
    InternalTraceHeaders,
    Metrics,
    MetricsListener,
    broker_sources,
    telemetry_middleware,
    tracer_provider_for,
)
from shared.mongo import DatabaseTime, IndexSpec, create_client, ensure_indexes, ping
from shared.outbox import OutboxRelay
from shared.settings import KringSettings, ProcessSettings
from shared.store import AggregateStore, Clock, MongoStore, utc_now

if TYPE_CHECKING:
    import uvicorn

S = TypeVar("S", bound=BaseModel)
API_VERSION = "1.0.0"
# The broker the published documents name (never the service's own URL: it holds a password).
PUBLISHED_BROKER = "amqp://rabbitmq.kring.example:5672/"

log = get_logger("kring.runtime")


def create_broker(settings: KringSettings, **options: Any) -> RabbitBroker:
    """A broker whose default channel confirms publishes, raises on unroutable
    messages and limits unacked deliveries per consumer (prefetch)."""
    return RabbitBroker(
        settings.rabbitmq_url,
        default_channel=Channel(prefetch_count=settings.prefetch, on_return_raises=True),
        app_id=f"kring-{settings.service_name}",
        logger=get_logger("faststream"),
        # FastStream's per-message "Received"/"Processed" lines cost throughput and say
        # nothing our own logs do not: DEBUG only.
        log_level=logging.DEBUG,
        **options,
    )


def service_clock(settings: KringSettings) -> Clock:
    """The clock a service process runs on: the real time; in development ahead by the
    seconds written in `clock_offset_file` (an end-to-end test moves the four processes
    past the retention period). Production refuses the setting (KringSettings.insecurity)."""
    path = settings.clock_offset_file
    if path is None:
        return utc_now

    def ahead() -> datetime:
        try:
            offset = float(path.read_text().strip() or 0)
        except (OSError, ValueError):
            offset = 0.0
        return utc_now() + timedelta(seconds=offset)

    return ahead


def broker_user(rabbitmq_url: str) -> str:
    """The broker user a URL connects as (AMQP's default, guest, if it names none)."""
    return unquote(urlsplit(rabbitmq_url).username or "guest")


class KringService:
    def __init__(
        self, settings: KringSettings, *, description: str = "", storage: MemoryStorage | None = None, clock: Clock = utc_now
    ) -> None:
        self.settings = settings
        self.name = settings.service_name
        self.source = f"kring/{self.name}"
        self.description = description
        self.topology = Topology(settings.amqp_prefix)
        self.broker = create_broker(settings, description=description)
        # Observability (shared.observability), each part only when configured. Middleware
        # order, outermost first: the trace span, the Prometheus counts (one per delivery,
        # with the ack the delivery policy gave), the delivery policy, and innermost for
        # publishing the removal of trace headers from what leaves Kring.
        self.metrics = Metrics(self.name) if settings.metrics_port is not None else None
        self.tracer_provider = tracer_provider_for(settings)
        topology = self.topology
        if self.tracer_provider is not None:
            self.broker.add_middleware(telemetry_middleware(self.tracer_provider, topology.events.name))
        if self.metrics is not None:
            self.broker.add_middleware(self.metrics.prometheus_middleware((topology.replies.name, topology.partner.name)))
            broker_sources(self.metrics, self)
        self.publisher = EventPublisher(self.broker, self.topology, broker_user(settings.rabbitmq_url))
        self.broker.add_middleware(DeliveryPolicy(self.publisher, settings, self.metrics))
        if self.tracer_provider is not None:
            self.broker.add_middleware(InternalTraceHeaders((topology.events.name, topology.dead_letter.name)))
        self.metrics_listener: MetricsListener | None = None
        self.database_time = DatabaseTime()
        listeners: list[Any] = [self.database_time] if settings.database_time_seconds else []
        if self.tracer_provider is not None:
            from opentelemetry.instrumentation.pymongo import CommandTracer

            listeners.append(CommandTracer(self.tracer_provider.get_tracer("kring.mongodb")))
        self.mongo: AsyncMongoClient = create_client(settings, listeners)  # connects on first use
        self.memory = storage
        self.relay = OutboxRelay(
            self.publisher,
            sweep_seconds=settings.relay_sweep_seconds,
            lease_seconds=settings.relay_lease_seconds,
        )
        self.indexes: list[IndexSpec] = []
        self.audit = (
            AuditLog(self.name, clock, memory=storage.audit) if storage is not None else AuditLog(self.name, clock, collection=self.db[AUDIT])
        )
        if storage is None:
            self.indexes += self.audit.indexes()
        self.published: list[type[Event]] = []  # what it documents it publishes (AsyncAPI)
        self.commands: dict[str, type[BaseModel]] = {}
        self.stores: dict[str, AggregateStore[Any]] = {}
        self._periodic: list[tuple[float, Callable[[], Awaitable[Any]]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        if settings.database_time_seconds:
            self.every(settings.database_time_seconds, self.log_database_time)

    async def log_database_time(self) -> None:
        if taken := self.database_time.take():
            log.info("database time", service=self.name, **taken)

    def every(self, seconds: float, job: Callable[[], Awaitable[Any]]) -> None:
        """Run `job` at start and then every `seconds` while the service runs (sweeps,
        timers). A failing run is logged and the next one comes as planned."""
        self._periodic.append((seconds, job))

    def gauge(self, name: str, documentation: str, compute: Callable[[], Awaitable[Any]]) -> None:
        """A Prometheus gauge of this service, computed when scraped (with metrics on):
        `compute` returns a number or a collection (its size). Never personal data."""
        if self.metrics is not None:
            self.metrics.gauge(name, documentation, compute)

    @property
    def db(self) -> AsyncDatabase:
        return self.mongo[self.settings.database_name]

    def aggregate_store(
        self,
        name: str,
        state_type: type[S],
        *,
        queried: Sequence[Sequence[str]] = (),
        clock: Clock = utc_now,
        alternate_key: Callable[[S], str | None] | None = None,
    ) -> AggregateStore[S]:
        """A store whose events the relay publishes. `queried`: the state paths of the lists
        the service asks for (each gets an index on MongoDB)."""
        options: dict[str, Any] = {"source": self.source, "clock": clock, "alternate_key": alternate_key, "on_events": self.relay.notify}
        store: AggregateStore[S]
        if self.memory is not None:
            store = self.memory.store(name, state_type, **options)
        else:
            mongo_store = MongoStore(self.db[name], state_type, **options)
            self.indexes += mongo_store.indexes(queried)
            store = mongo_store
        self.relay.watch(store)
        self.stores[name] = store
        return store

    async def start(self) -> None:
        """Before subscribers consume: indexes, exchanges and DLQs exist, relay runs."""
        if reason := self.settings.insecurity():
            raise InsecureConfiguration(reason)
        if self.settings.development:
            log.warning("development: tokens signed by the generated key pair, not for production", service=self.name)
        if self.memory is None:
            await ensure_indexes(self.db, self.indexes)
        await self.broker.connect()
        await self.topology.declare(self.broker, [sub.queue for sub in self.broker.subscribers])
        self.relay.start()
        self.relay.sweep_soon()  # publish what a previous run left behind
        self._tasks = [asyncio.create_task(self._repeat(seconds, job)) for seconds, job in self._periodic]
        if self.metrics is not None and self.settings.metrics_port is not None:
            self.metrics_listener = MetricsListener(self.metrics, self.settings.metrics_host, self.settings.metrics_port)
            await self.metrics_listener.start()
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)
        log.info("service started", service=self.name)

    async def _repeat(self, seconds: float, job: Callable[[], Awaitable[Any]]) -> None:
        while True:
            try:
                await job()
            except Exception as error:
                log.warning("periodic job failed", job=getattr(job, "__name__", "job"), error=type(error).__name__)
            await asyncio.sleep(seconds)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.metrics_listener is not None:
            await self.metrics_listener.stop()
        await self.relay.stop()
        await self.mongo.close()
        log.info("service stopped", service=self.name)

    async def readiness(self) -> dict[str, bool]:
        database = True if self.memory is not None else await ping(self.mongo)
        return {"broker": await self.broker.ping(timeout=2), "database": database}

    def on(self, event: type[Event]) -> Callable[[Callable[..., Awaitable[Any]]], Any]:
        """Decorator: this service handles `event` from its own quorum queue, under the
        delivery policy (shared.messaging.consumer)."""
        return subscribe(self.broker, self.topology, self.name, event)

    def documents(self, *events: type[Event]) -> None:
        """Describe in this service's AsyncAPI document that it publishes `events`
        (they are sent through the outbox; this only registers their description)."""
        self.published.extend(event for event in events if event not in self.published)

    def documents_command(self, binding_key: str, model: type[BaseModel]) -> None:
        """The body model of the commands its intake subscriber (`subscribe_command`) reads."""
        self.commands[binding_key] = model

    def asyncapi(self, server: str = PUBLISHED_BROKER) -> dict[str, Any]:
        """This service's AsyncAPI document (shared.messaging.asyncapi), naming `server`."""
        return asyncapi.document(self, server=server)

    def http_app(self, *routers: APIRouter) -> FastAPI:
        """The service's process: HTTP routes plus broker consumers, relay and health."""
        return create_http_app(self, routers, version=API_VERSION)


def dump_tasks() -> None:
    """`kill -USR1 <pid>`: where every task of the process waits, down the chain of awaits,
    to stderr (file, line and function only: no values), for a handler that hangs."""
    for task in asyncio.all_tasks():
        lines = [f"task {task.get_name()}:"]
        awaited: Any = task.get_coro()
        while awaited is not None:
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None) or getattr(awaited, "ag_frame", None)
            if frame is not None:
                lines.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None) or getattr(awaited, "ag_await", None)
        print("\n".join(lines), file=sys.stderr)
    sys.stderr.flush()


def server_config(app: FastAPI, settings: ProcessSettings, **options: Any) -> "uvicorn.Config":
    """How uvicorn serves the app. X-Forwarded-For is believed only from `trusted_proxies`
    (uvicorn's own default believes it from 127.0.0.1: anyone beside a local proxy, or
    the proxy passing the header on, would choose their own address for the rate limit)."""
    import uvicorn

    trusted = settings.trusted_proxies
    return uvicorn.Config(
        app, host=settings.http_host, port=settings.http_port, log_config=None, access_log=False,
        proxy_headers=bool(trusted), forwarded_allow_ips=list(trusted) if trusted else None,
        server_header=False, **options,
    )  # fmt: skip


def run(app: FastAPI, settings: ProcessSettings) -> None:
    """Serve the process (a service's broker consumers + HTTP, or the portal) until SIGINT/SIGTERM; refuse, with one
    line on stderr and exit status 2, to serve with settings production may not run on."""
    import uvicorn

    if reason := settings.insecurity():
        print(f"kring-{settings.service_name}: refusing to start: {reason}", file=sys.stderr)
        sys.exit(2)

    uvicorn.Server(server_config(app, settings)).run()


__all__: Sequence[str] = ("KringService", "create_broker", "run")
