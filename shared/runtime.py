"""The common runtime of a Kring service: broker, database, relay, health, lifecycle.

Each service has ONE wiring point (`services/<name>/app.py`) that builds a
`KringService`, registers its subscribers on `service.broker` (shared.messaging.
consumer.subscribe) and its stores (`aggregate_store`), and returns `service.asgi()`.
Nothing connects until the app starts.
"""

import json
from collections.abc import Sequence
from typing import Any, TypeVar

from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.rabbit import Channel, RabbitBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from shared.logging import get_logger
from shared.messaging.consumer import DeliveryPolicy
from shared.messaging.publisher import EventPublisher
from shared.messaging.topology import Topology
from shared.mongo import IndexSpec, create_client, ensure_indexes, ping
from shared.outbox import OutboxRelay
from shared.settings import KringSettings
from shared.store import AggregateStore

S = TypeVar("S", bound=BaseModel)

log = get_logger("kring.runtime")


def create_broker(settings: KringSettings, **options: Any) -> RabbitBroker:
    """A broker whose default channel confirms publishes, raises on unroutable
    messages and limits unacked deliveries per consumer (prefetch)."""
    return RabbitBroker(
        settings.rabbitmq_url,
        default_channel=Channel(prefetch_count=settings.prefetch, on_return_raises=True),
        app_id=f"kring-{settings.service_name}",
        logger=get_logger("faststream"),
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
        self.mongo: AsyncMongoClient = create_client(settings)  # connects on first use
        self.relay = OutboxRelay(
            self.publisher,
            sweep_seconds=settings.relay_sweep_seconds,
            lease_seconds=settings.relay_lease_seconds,
        )
        self.indexes: list[IndexSpec] = []

    @property
    def db(self) -> AsyncDatabase:
        return self.mongo[self.settings.database_name]

    def aggregate_store(self, collection: str, state_type: type[S]) -> AggregateStore[S]:
        """A store whose events the relay publishes, with its indexes registered."""
        store = AggregateStore(self.db[collection], state_type, source=self.source, on_events=self.relay.notify)
        self.relay.watch(store.collection, store.settle)
        self.indexes += AggregateStore.indexes(collection)
        return store

    async def start(self) -> None:
        """Before subscribers consume: indexes, exchanges and DLQs exist, relay runs."""
        await ensure_indexes(self.db, self.indexes)
        await self.broker.connect()
        await self.topology.declare(self.broker, [sub.queue for sub in self.broker.subscribers])
        self.relay.start()
        self.relay.notify()  # publish what a previous run left behind
        log.info("service started", service=self.name)

    async def stop(self) -> None:
        await self.relay.stop()
        await self.mongo.close()
        log.info("service stopped", service=self.name)

    async def readiness(self) -> dict[str, bool]:
        return {"broker": await self.broker.ping(timeout=2), "database": await ping(self.mongo)}

    def asgi(self) -> AsgiFastStream:
        @get(include_in_schema=False)
        async def live(scope: Any) -> AsgiResponse:
            return _json({"status": "alive", "service": self.name}, 200)

        @get(include_in_schema=False)
        async def ready(scope: Any) -> AsgiResponse:
            checks = await self.readiness()
            ok = all(checks.values())
            return _json({"status": "ready" if ok else "not ready", "checks": checks}, 200 if ok else 503)

        return AsgiFastStream(
            self.broker,
            logger=get_logger("faststream.app"),
            asgi_routes=[("/health/live", live), ("/health/ready", ready)],
            specification=AsyncAPI(title=f"Kring {self.name} service", version="0.1.0", description=self.description),
            on_startup=[self.start],
            on_shutdown=[self.stop],
        )


def _json(body: dict[str, Any], status: int) -> AsgiResponse:
    return AsgiResponse(json.dumps(body).encode(), status_code=status, headers={"content-type": "application/json"})


def run(app: AsgiFastStream, settings: KringSettings) -> None:
    """Serve the service (broker consumers + HTTP) until SIGINT/SIGTERM."""
    import uvicorn

    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None, access_log=False)


__all__: Sequence[str] = ("KringService", "create_broker", "run")
