"""Confirmed, persistent, mandatory publishing of events and dead letters.

The broker's default channel must be `Channel(on_return_raises=True)` (see
shared.runtime.create_broker): then a message no queue would receive raises
`Unroutable` here instead of vanishing, and a broker nack raises `PublishFailed`.

Every message carries the AMQP `user_id` of the publisher's broker user; RabbitMQ refuses
(closes the channel) a user_id that is not the connection's own user, so a consumer can
trust it (shared.messaging.consumer checks it against the event's producer). A dead letter
keeps the original sender in ORIGINAL_USER_HEADER; a redrive (kring-ops, tagged
`impersonator`) publishes it again under that user_id.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import DeliveryError
from faststream.rabbit import RabbitBroker, RabbitExchange
from pamqp.commands import Basic

from shared.contract.envelope import CONTENT_TYPE, Envelope, amqp_body, amqp_headers
from shared.contract.events import Channel
from shared.observability import continued_trace, current_trace_headers

from .topology import Topology

REASON_HEADER = "x-kring-dead-letter-reason"
QUEUE_HEADER = "x-kring-dead-letter-queue"
ORIGINAL_EXCHANGE_HEADER = "x-kring-original-exchange"
ORIGINAL_ROUTING_KEY_HEADER = "x-kring-original-routing-key"
DEAD_LETTERED_AT_HEADER = "x-kring-dead-lettered-at"
ORIGINAL_USER_HEADER = "x-kring-original-user-id"
KRING_HEADER_PREFIX = "x-kring-"
# Headers that describe a delivery, not the message: a redriven message starts afresh.
DELIVERY_HEADERS = ("x-delivery-count", "x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason")
MAX_REASON_LENGTH = 1000
DEFAULT_EXCHANGE = RabbitExchange("")


class PublishFailed(Exception):
    """The broker did not take the message (nack); it was not published."""


class Unroutable(PublishFailed):
    """No queue is bound for this message; it was returned, not published."""


def stored_form(envelope: Envelope[Any]) -> dict[str, Any]:
    """How an event waits in an outbox: everything needed to publish it, as plain data; with
    tracing on, the trace context of the span that caused it (`trace`: W3C headers), so that
    its publication later, by the relay, continues that trace (shared.observability)."""
    entry = {
        "channel": envelope.channel,
        "routing_key": envelope.routing_key,
        "envelope": envelope.model_dump(mode="json"),
    }
    if trace := current_trace_headers():
        entry["trace"] = trace
    return entry


class EventPublisher:
    def __init__(self, broker: RabbitBroker, topology: Topology, user_id: str) -> None:
        self.broker = broker
        self.topology = topology
        self.user_id = user_id

    async def publish(self, envelope: Envelope[Any]) -> None:
        await self.publish_stored(stored_form(envelope))

    async def publish_stored(self, entry: Mapping[str, Any], *, to_queue: str | None = None) -> None:
        """Publish a stored event on its exchange, or (`to_queue`, e.g. a replay for one
        subscriber) straight into one queue through the default exchange."""
        envelope = entry["envelope"]
        with continued_trace(entry.get("trace")):
            await self._send_stored(entry, envelope, to_queue)

    async def _send_stored(self, entry: Mapping[str, Any], envelope: Mapping[str, Any], to_queue: str | None) -> None:
        await self._send(
            self.topology.exchange_for(Channel(entry["channel"])) if to_queue is None else DEFAULT_EXCHANGE,
            entry["routing_key"] if to_queue is None else to_queue,
            amqp_body(envelope),
            headers=amqp_headers(envelope),
            content_type=CONTENT_TYPE,
            message_id=envelope["id"],
            correlation_id=envelope["correlation_id"],
            timestamp=datetime.fromisoformat(envelope["time"]),
            message_type=envelope["type"],
        )

    async def send_command(self, routing_key: str, body: bytes, **properties: Any) -> None:
        """Publish a command on the intake exchange: only a bureau's user may (used by
        bureaus' clients and tests)."""
        await self._send(self.topology.intake, routing_key, body, **properties)

    async def dead_letter(self, message: AbstractIncomingMessage, queue: str, reason: str) -> None:
        """Put a copy of `message` in `queue`'s DLQ with the reason; the caller then acks it."""
        headers = dict(message.headers or {})
        headers.update(
            {
                REASON_HEADER: reason[:MAX_REASON_LENGTH],
                QUEUE_HEADER: queue,
                ORIGINAL_EXCHANGE_HEADER: message.exchange or "",
                ORIGINAL_ROUTING_KEY_HEADER: message.routing_key or "",
                DEAD_LETTERED_AT_HEADER: datetime.now(UTC).isoformat(),
                ORIGINAL_USER_HEADER: message.user_id or "",
            }
        )
        await self._send(self.topology.dead_letter, queue, message.body, headers=headers, **_properties_of(message))

    async def redrive(self, message: AbstractIncomingMessage, queue: str) -> None:
        """Put a copy of dead letter `message` back on `queue` as a fresh delivery, without the
        dead-letter and delivery headers; the caller then acks it. Raises Unroutable if the
        queue is gone."""
        # Kring's dead letters name the original sender (their own user_id is the service's
        # that dead-lettered them); the broker's own (delivery limit) keep the original.
        original = (message.headers or {}).get(ORIGINAL_USER_HEADER, message.user_id)
        original = original.decode() if isinstance(original, bytes) else original
        headers = {
            key: value
            for key, value in (message.headers or {}).items()
            if not key.startswith(KRING_HEADER_PREFIX) and key not in DELIVERY_HEADERS
        }
        await self._send(
            DEFAULT_EXCHANGE, queue, message.body, headers=headers, user_id=original or None, **_properties_of(message)
        )

    async def _send(self, exchange: RabbitExchange, routing_key: str, body: bytes, **properties: Any) -> None:
        properties.setdefault("user_id", self.user_id)
        try:
            await self.broker.publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                persist=True,
                mandatory=True,
                **properties,
            )
        except DeliveryError as error:
            if isinstance(error.frame, Basic.Return):
                raise Unroutable(f"no queue bound for {exchange.name or '(default)'} / {routing_key}") from None
            raise PublishFailed(f"broker refused {exchange.name} / {routing_key}") from None


def _properties_of(message: AbstractIncomingMessage) -> dict[str, Any]:
    """What a copy of `message` keeps besides its body and headers."""
    return {
        "content_type": message.content_type,
        "message_id": message.message_id,
        "correlation_id": message.correlation_id,
        "timestamp": message.timestamp,
        "message_type": message.type,
    }
