"""Runs Kring services in-process against the real servers, each test in its own
namespace (AMQP prefix + databases), and removes everything afterwards.

Every party connects as its own broker user from deploy/rabbitmq/definitions.development.json
(scripts/infra.sh loads it): service X's settings use `kring-X`, ops `kring-ops`, a bureau's
commands go out as `bureau-<organisation>`, and an event published "as another service would"
goes out as its producer. The URL the harness is given (guest) only administers: probes,
draining, cleanup. Topic permissions name exact exchanges, so the loaded ones hold for the
`kring` namespace; `enforce_topic_permissions()` applies the same rules to this test's own
exchanges (with rabbitmqctl, on a local broker)."""

import asyncio
import importlib.util
import itertools
import json
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from collections.abc import Callable

import aio_pika
import httpx
from fastapi import FastAPI
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection
from pymongo import AsyncMongoClient

from shared.auth import Role, issue_token
from shared.contract.envelope import CONTENT_TYPE, Envelope
from shared.messaging.parties import OPS_USER, bureau_user, development_url, service_user
from shared.messaging.publisher import EventPublisher
from shared.messaging.topology import Topology
from shared.runtime import KringService, create_broker
from shared.settings import KringSettings

SERVICES = ("referral", "scheduling", "plans", "followup")
DEFINITIONS = Path(__file__).resolve().parents[2] / "deploy" / "rabbitmq" / "definitions.py"


def load_definitions() -> ModuleType:
    """deploy/rabbitmq/definitions.py, the source of the broker's users and permissions."""
    spec = importlib.util.spec_from_file_location("kring_definitions", DEFINITIONS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rabbitmqctl(*args: str, node: str | None = None) -> subprocess.CompletedProcess[str]:
    command = ["rabbitmqctl", *(["-n", node] if node else []), "-q", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"rabbitmqctl {' '.join(args[:1])}: {(done.stderr or done.stdout).strip()[-500:]}")
    return done

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
        self.producers: dict[str, EventPublisher] = {}
        self.party_brokers: list[Any] = []
        self.bureaus: dict[str, AbstractChannel] = {}
        self.party_connections: list[AbstractRobustConnection] = []
        self.topic_rules: list[dict[str, str]] = []

    async def open(self) -> None:
        self.connection = await aio_pika.connect_robust(self.rabbitmq_url)
        self.channel = await self.connection.channel()

    def broker_url(self, party: str) -> str:
        """The broker URL of a party: a service's name, "ops", or a broker user's name
        (bureau-…, funder-…)."""
        if party in SERVICES:
            party = service_user(party)
        elif party == "ops":
            party = OPS_USER
        return development_url(self.rabbitmq_url, party)

    def settings(self, service: str, **overrides: Any) -> KringSettings:
        prefix = f"kring_{self.namespace.replace('-', '_')}"
        self.databases.add(f"{prefix}_{service.replace('-', '_')}")
        values: dict[str, Any] = {
            "RABBITMQ_URL": self.broker_url(service) if service in (*SERVICES, "ops") else self.rabbitmq_url,
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

    async def publisher_as(self, user: str) -> EventPublisher:
        """A publisher (confirmed, mandatory) connected as broker user `user`, e.g.
        kring-referral or bureau-bjz-utrecht."""
        if user not in self.producers:
            settings = self.settings(user, RABBITMQ_URL=development_url(self.rabbitmq_url, user))
            broker = create_broker(settings)
            await broker.connect()
            self.party_brokers.append(broker)
            self.producers[user] = EventPublisher(broker, self.topology, user)
        return self.producers[user]

    async def publish(self, envelope: Envelope[Any]) -> None:
        """Publish `envelope` as its producer would: as that service's broker user."""
        await (await self.publisher_as(service_user(type(envelope.data).producer()))).publish(envelope)

    async def send_command(
        self, routing_key: str, body: bytes | dict[str, Any], *, bureau: str = "bjz-utrecht", **properties: Any
    ) -> None:
        """Publish a command on the intake exchange as bureau `bureau` (its broker user),
        confirmed and persistent."""
        if bureau not in self.bureaus:
            connection = await aio_pika.connect_robust(self.broker_url(bureau_user(bureau)))
            self.party_connections.append(connection)
            self.bureaus[bureau] = await connection.channel(publisher_confirms=True)
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            properties.setdefault("content_type", CONTENT_TYPE)
        properties.setdefault("message_id", str(uuid.uuid4()))
        intake = await self.bureaus[bureau].get_exchange(self.topology.intake.name, ensure=False)
        message = aio_pika.Message(body, user_id=bureau_user(bureau), delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **properties)
        await intake.publish(message, routing_key)

    async def enforce_topic_permissions(self) -> None:
        """The loaded definitions' topic permissions, for this namespace's exchanges too."""
        definitions = load_definitions()
        users = definitions.permissions(
            self.namespace, bureaus=definitions.DEVELOPMENT_BUREAUS, funders=definitions.DEVELOPMENT_FUNDERS
        )
        self.topic_rules = definitions.topic_permissions(users, urlsplit(self.rabbitmq_url).path.lstrip("/") or "/")
        with tempfile.TemporaryDirectory() as folder:
            file = Path(folder) / "topic-permissions.json"
            file.write_text(json.dumps({"topic_permissions": self.topic_rules}))
            # the broker's node reads the file itself, as its own (unprivileged) user
            Path(folder).chmod(0o755)
            file.chmod(0o644)
            await asyncio.to_thread(rabbitmqctl, "import_definitions", str(file))

    async def _clear_topic_permissions(self) -> None:
        if not self.topic_rules:
            return
        # one rabbitmqctl call, not one per user and exchange (each costs seconds)
        calls = ", ".join(
            f"rabbit_auth_backend_internal:clear_topic_permissions(<<\"{r['user']}\">>, <<\"{r['vhost']}\">>, "
            f"<<\"{r['exchange']}\">>, <<\"kring-tests\">>)"
            for r in self.topic_rules
        )
        await asyncio.to_thread(rabbitmqctl, "eval", f"[{calls}].")
        self.topic_rules = []

    async def probe(self, exchange: str, binding_key: str) -> aio_pika.abc.AbstractQueue:
        """A queue of the test's own that receives copies of matching messages."""
        assert self.channel is not None
        name = f"{self.namespace}.probe.{uuid.uuid4().hex[:6]}"
        self.extra_queues.add(name)
        queue = await self.channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind(exchange, routing_key=binding_key)
        return queue

    async def funder_queue(self, funder_id: str, *, binding_key: str | None = None) -> aio_pika.abc.AbstractQueue:
        """A funder's own partner queue, declared and bound as operations would (by default
        to the funder's slice of the partner exchange)."""
        assert self.channel is not None
        name = self.topology.partner_queue_name(funder_id)
        self.extra_queues.add(name)
        queue = await self.channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        await queue.bind(self.topology.partner.name, routing_key=binding_key or f"outcome.recorded.{funder_id}.#")
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
        for broker in self.party_brokers:
            await broker.stop()
        for party in self.party_connections:
            await party.close()
        await self._clear_topic_permissions()
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
