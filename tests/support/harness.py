"""Runs Kring services in-process against the real servers, each test in its own
namespace (AMQP prefix + databases), and removes everything afterwards."""

import asyncio
import itertools
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from collections.abc import Callable

import aio_pika
import httpx
from fastapi import FastAPI
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from pymongo import AsyncMongoClient

from shared.auth import Role, issue_token
from shared.messaging.topology import Topology
from shared.runtime import KringService
from shared.settings import KringSettings

RUN_ID = uuid.uuid4().hex[:8]
_numbers = itertools.count(1)


def with_host_port(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    query = "&".join(filter(None, [parts.query, "directConnection=true"]))
    return urlunsplit((parts.scheme, netloc, parts.path or "/", query, parts.fragment))


class Harness:
    def __init__(self, rabbitmq_url: str, mongodb_url: str) -> None:
        self.rabbitmq_url = rabbitmq_url
        self.mongodb_url = mongodb_url
        self.namespace = f"test-{RUN_ID}-{next(_numbers)}"
        self.topology = Topology(self.namespace)
        self.services: list[KringService] = []
        self.started: list[KringService] = []
        self.extra_queues: set[str] = set()
        self.databases: set[str] = set()
        self.connection: AbstractRobustConnection | None = None
        self.channel: AbstractChannel | None = None
        self.mongo = AsyncMongoClient(mongodb_url, tz_aware=True)

    async def open(self) -> None:
        self.connection = await aio_pika.connect_robust(self.rabbitmq_url)
        self.channel = await self.connection.channel()

    def settings(self, service: str, **overrides: Any) -> KringSettings:
        prefix = f"kring_{self.namespace.replace('-', '_')}"
        self.databases.add(f"{prefix}_{service.replace('-', '_')}")
        values: dict[str, Any] = {
            "RABBITMQ_URL": self.rabbitmq_url,
            "MONGODB_URL": self.mongodb_url,
            "service_name": service,
            "environment": "development",
            "amqp_prefix": self.namespace,
            "mongodb_database_prefix": prefix,
            "relay_sweep_seconds": 0.5,
            "retry_initial_seconds": 0.05,
            "retry_max_seconds": 0.5,
            "mongodb_timeout_ms": 2000,
        }
        values.update(overrides)
        return KringSettings(**values)

    def app(self, create_app: Callable[[KringSettings], FastAPI], name: str, **overrides: Any) -> FastAPI:
        """A service built by its own wiring point, in this test's namespace; start it
        with `await kring.start(app.state.kring)` and call it with `kring.http(app)`."""
        app = create_app(self.settings(name, **overrides))
        self.services.append(app.state.kring)
        return app

    def http(self, app: FastAPI, token: str | None = None) -> httpx.AsyncClient:
        """An HTTP client talking to `app` in-process (its lifespan is the harness's job)."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kring.test", headers=headers)

    def token(self, role: Role, subject: str = "someone", **claims: Any) -> str:
        """A development token of `role`, for all four services unless `audience=` says which."""
        return issue_token(self.settings("auth"), subject=subject, role=role, **claims)

    def service(self, name: str, **overrides: Any) -> KringService:
        service = KringService(self.settings(name, **overrides))
        self.services.append(service)
        return service

    async def start(self, service: KringService) -> KringService:
        await service.start()
        await service.broker.start()
        self.started.append(service)
        return service

    async def stop(self, service: KringService) -> None:
        if service in self.started:
            self.started.remove(service)
            await service.broker.stop()
            await service.stop()

    async def probe(self, exchange: str, binding_key: str) -> aio_pika.abc.AbstractQueue:
        """A queue of the test's own that receives copies of matching messages."""
        assert self.channel is not None
        name = f"{self.namespace}.probe.{uuid.uuid4().hex[:6]}"
        self.extra_queues.add(name)
        queue = await self.channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind(exchange, routing_key=binding_key)
        return queue

    async def drain(self, queue_name: str, *, settle: float = 0.3) -> list[AbstractIncomingMessage]:
        """Take every message now in `queue_name` (waiting `settle` s for stragglers)."""
        assert self.channel is not None
        queue = await self.channel.get_queue(queue_name, ensure=False)
        messages = []
        await asyncio.sleep(settle)
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            await message.ack()
            messages.append(message)
        return messages

    async def depth(self, queue_name: str) -> int:
        assert self.channel is not None
        # Not channel.declare_queue(passive=True): aio-pika's robust channel answers that from a
        # cache of queues it declared before, with the message count of back then.
        underlay = await self.channel.get_underlay_channel()
        declared = await underlay.queue_declare(queue_name, passive=True)
        return declared.message_count

    async def close(self) -> None:
        for service in list(self.started):
            await self.stop(service)
        for service in self.services:
            await service.mongo.close()
        queues = set(self.extra_queues) | {self.topology.unrouted_queue.name}
        for service in self.services:
            for subscriber in service.broker.subscribers:
                queues |= {subscriber.queue.name, self.topology.dead_letter_queue(subscriber.queue.name).name}
        if self.connection is not None:
            channel = await self.connection.channel()
            for name in queues:
                await channel.queue_delete(name)
            for exchange in self.topology.exchanges():
                await channel.exchange_delete(exchange.name)
            await self.connection.close()
        for database in self.databases:
            await self.mongo.drop_database(database)
        await self.mongo.close()
