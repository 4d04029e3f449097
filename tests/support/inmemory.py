"""A service built by its own wiring point on the in-memory store (shared.memory) and
FastStream's TestRabbitBroker: no server, handlers run as the messages are published.

    async with InMemoryService(create_app, "scheduling") as scheduling:
        await scheduling.publish(referral_received())   # and everything it causes, in turn
        assert scheduling.sent("scheduling.coordinator-assigned")

Every event the service publishes goes through its real outbox relay and EventPublisher; a
spy subscriber on the service's own broker records it (TestRabbitBroker routes topic keys
in memory, so the service's own subscribers receive what they subscribe to as well).
"""

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI
from faststream.rabbit import RabbitMessage, RabbitQueue, TestRabbitBroker

from shared.auth import Role, issue_token
from shared.contract.envelope import Envelope
from shared.contract.events import Event
from shared.memory import MemoryStorage
from shared.messaging.parties import bureau_user, development_url, service_user
from shared.messaging.publisher import EventPublisher
from shared.runtime import KringService
from shared.settings import KringSettings


class InMemoryService:
    def __init__(self, create_app: Callable[..., FastAPI], name: str, **options: Any) -> None:
        # as its own broker user, like the real one: consumers check the sender of everything
        url = development_url(KringSettings.model_fields["rabbitmq_url"].default, service_user(name))
        self.settings = KringSettings(service_name=name, environment="development", relay_sweep_seconds=3600, RABBITMQ_URL=url)
        self.storage = MemoryStorage()
        self.app = create_app(self.settings, storage=self.storage, **options)
        self.service: KringService = self.app.state.kring
        self.messages: list[tuple[str, str, dict[str, Any]]] = []  # (exchange, routing key, body)
        for exchange in (self.service.topology.events, self.service.topology.partner, self.service.topology.replies):
            self._spy(exchange)
        self._testing = TestRabbitBroker(self.service.broker)

    def _spy(self, exchange: Any) -> None:
        @self.service.broker.subscriber(RabbitQueue(f"spy.{exchange.name}", routing_key="#"), exchange)
        async def spy(body: Any, message: RabbitMessage) -> None:
            await message.ack()
            self.messages.append((exchange.name, message.raw_message.routing_key or "", json.loads(message.body)))

    async def __aenter__(self) -> "InMemoryService":
        await self._testing.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._testing.__aexit__(*exc)

    async def publish(self, event: Event, *, cause: Envelope[Any] | None = None, time: datetime | None = None) -> Envelope[Any]:
        """Publish `event` as another service would, then let the service finish reacting."""
        envelope = Envelope.wrap(event, source="kring/test", cause=cause, time=time)
        await self.redeliver(envelope)
        return envelope

    async def redeliver(self, envelope: Envelope[Any]) -> None:
        """Publish `envelope` as its producer's broker user (TestRabbitBroker does not check
        user_ids; the consumers do)."""
        await self._as(service_user(type(envelope.data).producer())).publish(envelope)
        await self.settle()

    async def command(self, routing_key: str, body: dict[str, Any], *, message_id: str, bureau: str = "bjz-utrecht") -> None:
        await self._as(bureau_user(bureau)).send_command(
            routing_key, json.dumps(body).encode(), content_type="application/json", message_id=message_id
        )
        await self.settle()

    def _as(self, user: str) -> EventPublisher:
        return EventPublisher(self.service.broker, self.service.topology, user)

    async def settle(self) -> int:
        """Publish what the outboxes hold until nothing new comes (each publish runs the
        handlers it reaches, which may write more)."""
        published = 0
        while moved := await self.service.relay.publish_hot():
            published += moved
        return published

    def sent(self, routing_key: str) -> list[dict[str, Any]]:
        """Bodies of the messages published with `routing_key` (a prefix for the partner's)."""
        return [body for _, key, body in self.messages if key == routing_key or key.startswith(f"{routing_key}.")]

    def http(self, role: Role | None = None, subject: str = "someone", **claims: Any) -> httpx.AsyncClient:
        headers = {}
        if role is not None:
            headers["authorization"] = f"Bearer {issue_token(self.settings, subject=subject, role=role, **claims)}"
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://kring.test", headers=headers)

    async def http_settled(self, method: str, url: str, role: Role, subject: str = "someone", **request: Any) -> httpx.Response:
        """One HTTP request, then let the service finish reacting to what it wrote."""
        async with self.http(role, subject, **{key: request.pop(key) for key in ("organisation_id", "case_id") if key in request}) as client:
            response = await client.request(method, url, **request)
        await self.settle()
        return response
