"""The common runtime of a Kring service: broker, database, relay, health, lifecycle.

Each service has ONE wiring point (`services/<name>/app.py`) that builds a
`KringService`, registers its subscribers on `service.broker` (shared.messaging.
consumer.subscribe) and its stores (`aggregate_store`), and returns
`service.http_app(*routers)` (a FastAPI app, see shared.http).
Nothing connects until the app starts.
"""

import asyncio
import logging
import random
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI
from faststream.rabbit import Channel, RabbitBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared.contract.events import Event
from shared.http import create_http_app
from shared.logging import get_logger
from shared.messaging.consumer import DeliveryPolicy, subscribe
from shared.messaging.publisher import EventPublisher
from shared.messaging.topology import Topology
from shared.mongo import DatabaseTime, IndexSpec, create_client, ensure_indexes, ping
from shared.outbox import OutboxRelay
from shared.settings import KringSettings
from shared.store import AggregateStore

S = TypeVar("S", bound=BaseModel)
API_VERSION = "1.0.0"

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


class KringService:
    def __init__(self, settings: KringSettings, *, description: str = "") -> None:
        self.settings = settings
        self.name = settings.service_name
        self.source = f"kring/{self.name}"
        self.description = description
        self.topology = Topology(settings.amqp_prefix)
        self.broker = create_broker(settings, description=description)
        self.publisher = EventPublisher(self.broker, self.topology)
        self.broker.add_middleware(DeliveryPolicy(self.publisher, settings))
        self.database_time = DatabaseTime()
        listeners = [self.database_time] if settings.database_time_seconds else []
        self.mongo: AsyncMongoClient = create_client(settings, listeners)  # connects on first use
        self.relay = OutboxRelay(
            self.publisher,
            sweep_seconds=settings.relay_sweep_seconds,
            lease_seconds=settings.relay_lease_seconds,
        )
        self.indexes: list[IndexSpec] = []
        self._periodic: list[tuple[float, float, Callable[[], Awaitable[Any]]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        if settings.database_time_seconds:
            self.every(settings.database_time_seconds, self.log_database_time)

    async def log_database_time(self) -> None:
        if taken := self.database_time.take():
            log.info("database time", service=self.name, **taken)

    def every(self, seconds: float, job: Callable[[], Awaitable[Any]], *, spread: bool = False) -> None:
        """Run `job` at start and then every `seconds` while the service runs (sweeps,
        timers). A failing run is logged and the next one comes as planned. `spread`: the
        first run comes after a random part of the period instead, for costly checks that
        replicas started together, or a process restarted again and again, should not all
        run at start."""
        self._periodic.append((random.uniform(0, seconds) if spread else 0.0, seconds, job))

    @property
    def db(self) -> AsyncDatabase:
        return self.mongo[self.settings.database_name]

    def aggregate_store(self, collection: str, state_type: type[S]) -> AggregateStore[S]:
        """A store whose events the relay publishes, with its indexes registered."""
        store = AggregateStore(self.db[collection], state_type, source=self.source, on_events=self.relay.notify)
        self.relay.watch(store.collection)
        self.indexes += AggregateStore.indexes(collection)
        return store

    async def start(self) -> None:
        """Before subscribers consume: indexes, exchanges and DLQs exist, relay runs."""
        await ensure_indexes(self.db, self.indexes)
        await self.broker.connect()
        await self.topology.declare(self.broker, [sub.queue for sub in self.broker.subscribers])
        self.relay.start()
        self.relay.notify()  # sweep now: publish what a previous run left behind
        self._tasks = [asyncio.create_task(self._repeat(first, seconds, job)) for first, seconds, job in self._periodic]
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)
        log.info("service started", service=self.name)

    async def _repeat(self, first: float, seconds: float, job: Callable[[], Awaitable[Any]]) -> None:
        await asyncio.sleep(first)
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
        await self.relay.stop()
        await self.mongo.close()
        log.info("service stopped", service=self.name)

    async def readiness(self) -> dict[str, bool]:
        return {"broker": await self.broker.ping(timeout=2), "database": await ping(self.mongo)}

    def on(self, event: type[Event]) -> Callable[[Callable[..., Awaitable[Any]]], Any]:
        """Decorator: this service handles `event` from its own quorum queue, under the
        delivery policy (shared.messaging.consumer)."""
        return subscribe(self.broker, self.topology, self.name, event)

    def documents(self, *events: type[Event]) -> None:
        """Describe in this service's AsyncAPI document that it publishes `events`
        (they are sent through the outbox; this only registers their description)."""
        for event in events:
            self.broker.publisher(
                event.binding_key(),
                exchange=self.topology.exchange_for(event.channel),
                schema=event,
                title=f"{self.name}.publishes.{event.type_name()}",
                description=(event.__doc__ or "").strip() or None,
                persist=True,
            )

    def asyncapi(self) -> AsyncAPI:
        return AsyncAPI(self.broker, title=f"Kring {self.name} service", version=API_VERSION, description=self.description)

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


def run(app: FastAPI, settings: KringSettings) -> None:
    """Serve the service (broker consumers + HTTP) until SIGINT/SIGTERM."""
    import uvicorn

    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None, access_log=False)


__all__: Sequence[str] = ("KringService", "create_broker", "run")
