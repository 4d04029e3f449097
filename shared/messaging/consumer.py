"""How every Kring subscriber treats a message: the delivery policy.

- Decoding: CloudEvents headers + JSON body become an `Envelope[SomeEvent]`, validated
  (`envelope_decoder`); the broker-validated AMQP user_id must be the event's producer
  (`kring-<Event.producer()>`), and a command's must be a bureau's (`bureau-<organisation>`).
- Invalid input (a sender that may not send it, bad headers, broken JSON, wrong type or version, schema errors of the
  message, or a handler's InvalidInput): a copy goes to the queue's DLQ with the reason in a
  header, the original is acked. Reasons name fields, never values: data may be personal.
- Transient fault (TransientFault, database unreachable): retried in-process with
  exponential backoff, the message held unacked meanwhile; after `retry_give_up_seconds` it
  is requeued.
- Any other error (a refused rule, a bug, a model a handler built wrongly): requeued
  (counts towards the queue's delivery limit); on the last allowed delivery it is
  dead-lettered with the error type as reason.
- Success: acked, after the handler's state change is stored.
(shared.errors lists the whole hierarchy.)
"""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import pydantic
from fast_depends.exceptions import ValidationError as ArgumentValidationError
from faststream import AckPolicy, BaseMiddleware
from faststream.rabbit import RabbitBroker, RabbitMessage, RabbitQueue, RabbitRouter

from shared.contract.envelope import CONTENT_TYPE, HEADER_PREFIX, Envelope, InvalidMessage, envelope_from_amqp
from shared.contract.events import Event
from shared.contract.vocabulary import Identifier
from shared.errors import InvalidInput, TransientFault
from shared.logging import bind_message_context, get_logger
from shared.mongo import database_unavailable
from shared.settings import KringSettings

from .parties import BUREAU_USER_PREFIX, service_user

if TYPE_CHECKING:
    from shared.observability import Metrics
from .publisher import EventPublisher
from .topology import DELIVERY_LIMIT, Topology

log = get_logger("kring.consumer")

# The message being handled, for a handler that needs its AMQP properties: cheaper than
# FastStream's injection of a RabbitMessage parameter (a worker-thread hop per message).
_current: ContextVar[RabbitMessage] = ContextVar("kring_current_message")


def current_message() -> RabbitMessage:
    return _current.get()


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TransientFault) or database_unavailable(error)


_organisation = pydantic.TypeAdapter(Identifier)


def _user_id(raw: Any) -> str:
    return (raw.user_id or "")[:100]


def check_producer(raw: Any, event: type[Event]) -> None:
    """Only the event's producer may have published it: RabbitMQ validated the user_id."""
    expected = service_user(event.producer())
    if raw.user_id != expected:
        raise InvalidMessage(f"user_id {_user_id(raw)!r} may not publish {event.type_name()} (only {expected})")


def sender_organisation(raw: Any) -> str:
    """The bureau that published a command, from its broker-validated user_id: the only
    source of its identity (never the body)."""
    user = raw.user_id or ""
    try:
        if not user.startswith(BUREAU_USER_PREFIX):
            raise ValueError
        return _organisation.validate_python(user.removeprefix(BUREAU_USER_PREFIX))
    except (ValueError, pydantic.ValidationError):
        raise InvalidMessage(f"user_id {_user_id(raw)!r} is not a bureau's: only bureaus send commands") from None


def envelope_decoder(event: type[Event]) -> Callable[[RabbitMessage, Callable[..., Any]], Awaitable[Envelope[Any]]]:
    """Decodes and validates an `Envelope[event]` here, so that a message that does not fit is
    told apart from a model a handler builds wrongly (a bug, not bad input)."""
    envelope_type = Envelope[event]  # type: ignore[valid-type]

    async def decode(message: RabbitMessage, _default: Callable[..., Any]) -> Envelope[Any]:
        raw = message.raw_message
        check_producer(raw, event)
        try:
            return envelope_type.model_validate(envelope_from_amqp(raw.headers, raw.body, raw.content_type))
        except pydantic.ValidationError as error:
            raise InvalidMessage(describe_invalid(error).removeprefix("invalid message: ")) from None

    return decode


async def command_decoder(message: RabbitMessage, _default: Callable[..., Any]) -> dict[str, Any]:
    """A command from outside Kring (a bureau's system): a JSON object, no envelope."""
    raw = message.raw_message
    sender_organisation(raw)
    if raw.content_type not in (None, CONTENT_TYPE):
        raise InvalidMessage(f"content type {raw.content_type!r} is not {CONTENT_TYPE}")
    try:
        body = json.loads(raw.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidMessage(f"body is not valid JSON ({type(error).__name__})") from None
    if not isinstance(body, dict):
        raise InvalidMessage("body is not a JSON object")
    return body


def describe_invalid(error: Exception) -> str:
    """Why a message is invalid, naming fields but never their values."""
    if isinstance(error, ArgumentValidationError):
        error = error.original_error
    if isinstance(error, pydantic.ValidationError):
        problems = [
            f"{'.'.join(str(part) for part in item['loc']) or '(message)'}: {item['msg']}"
            for item in error.errors(include_input=False, include_url=False, include_context=False)
        ]
        return "invalid message: " + "; ".join(problems)
    return f"invalid message: {error}"


def _is_invalid(error: Exception) -> bool:
    """The message itself cannot be taken: its decoding or its schema failed, or a handler
    said so. A pydantic error raised inside a handler is a bug, not bad input."""
    return isinstance(error, (InvalidInput, ArgumentValidationError))


class DeliveryPolicy:
    """Broker middleware factory applying the policy above to every subscriber."""

    def __init__(self, publisher: EventPublisher, settings: KringSettings, metrics: "Metrics | None" = None) -> None:
        self.publisher = publisher
        self.settings = settings
        self.metrics = metrics

    def __call__(self, msg: Any, /, *, context: Any) -> BaseMiddleware:
        return _DeliveryPolicyScope(msg, context=context, policy=self)

    async def handle(self, call_next: Callable[[Any], Awaitable[Any]], message: RabbitMessage, queue: str) -> Any:
        started = time.monotonic()
        delay = self.settings.retry_initial_seconds
        while True:
            try:
                result = await call_next(message)
            except Exception as error:
                if _is_invalid(error):
                    await self._dead_letter(message, queue, describe_invalid(error), cause="invalid")
                    return None
                if is_transient(error):
                    if time.monotonic() - started < self.settings.retry_give_up_seconds:
                        log.warning("transient fault, retrying", error=type(error).__name__, retry_in=delay)
                        if self.metrics is not None:
                            self.metrics.transient_retries.labels(queue).inc()
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, self.settings.retry_max_seconds)
                        continue
                    log.error("transient fault persists, requeueing", error=type(error).__name__)
                    await message.nack(requeue=True)
                    return None
                await self._failed(message, queue, error)
                return None
            await message.ack()
            return result

    async def _failed(self, message: RabbitMessage, queue: str, error: Exception) -> None:
        deliveries = 1 + int((message.raw_message.headers or {}).get("x-delivery-count") or 0)
        if deliveries > DELIVERY_LIMIT:
            reason = f"handler failed on {deliveries} deliveries: {type(error).__name__}"
            await self._dead_letter(message, queue, reason, cause="failed")
            return
        log.error("handler failed, requeueing", error=type(error).__name__, delivery=deliveries, exc_info=error)
        await message.nack(requeue=True)

    async def _dead_letter(self, message: RabbitMessage, queue: str, reason: str, *, cause: str) -> None:
        log.warning("message dead-lettered", reason=reason)
        await self.publisher.dead_letter(message.raw_message, queue, reason)
        await message.ack()
        if self.metrics is not None:
            self.metrics.dead_lettered.labels(queue, cause).inc()


class _DeliveryPolicyScope(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: Any, policy: DeliveryPolicy) -> None:
        super().__init__(msg, context=context)
        self.policy = policy

    async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: RabbitMessage) -> Any:
        queue = self.context.get_local("handler_").queue.name
        headers = msg.raw_message.headers or {}
        _current.set(msg)
        with bind_message_context(
            queue=queue,
            event_id=_text(headers.get(f"{HEADER_PREFIX}id")),
            event_type=_text(headers.get(f"{HEADER_PREFIX}type")),
            correlation_id=_text(headers.get(f"{HEADER_PREFIX}correlationid")),
        ):
            return await self.policy.handle(call_next, msg, queue)


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")[:100]
    return None if value is None else str(value)[:100]


def subscribe(
    registrator: RabbitBroker | RabbitRouter,
    topology: Topology,
    service: str,
    event: type[Event],
    *,
    queue: RabbitQueue | None = None,
) -> Callable[[Callable[..., Awaitable[Any]]], Any]:
    """Decorator: subscribe a handler to `event` with its own quorum queue.

        @subscribe(service.broker, service.topology, "scheduling", ReferralReceived)
        async def on_referral_received(envelope: Envelope[ReferralReceived]) -> None: ...
    """
    return registrator.subscriber(
        queue or topology.queue(service, event.binding_key()),
        topology.exchange_for(event.channel),
        ack_policy=AckPolicy.MANUAL,
        decoder=envelope_decoder(event),
        title=f"{service}:{event.type_name()}",
    )


def subscribe_command(
    registrator: RabbitBroker | RabbitRouter,
    topology: Topology,
    service: str,
    binding_key: str,
    *,
    description: str | None = None,
) -> Callable[[Callable[..., Awaitable[Any]]], Any]:
    """Decorator: subscribe a handler to commands on the intake exchange; the handler gets
    the decoded JSON object and validates it itself (so it can answer what is wrong)."""
    return registrator.subscriber(
        topology.queue(service, binding_key),
        topology.intake,
        ack_policy=AckPolicy.MANUAL,
        decoder=command_decoder,
        title=f"{service}:{binding_key}",
        description=description,
    )
