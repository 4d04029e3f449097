"""Every exchange and queue of Kring, declared in one place.

- `<prefix>.events`   topic, internal events, routing key = event name;
- `<prefix>.intake`   topic, commands from bureaus (e.g. referral.submit);
- `<prefix>.partner`  topic, anonymised outcome events for funders
                      (routing key outcome.recorded.<funder>.<province>.<municipality>);
- `<prefix>.replies`  topic, answers to intake commands (referral.accepted.<organisation>,
                      referral.rejected.<organisation>);
- `<prefix>.unrouted` fanout, alternate exchange of events/partner/replies: an event nobody
                      has bound yet is parked in queue `<prefix>.unrouted`, not dropped;
- `<prefix>.dead-letter` direct, routing key = the source queue's name, one DLQ
                      (`<queue>.dlq`) per queue.
A funder reads its own queue `<prefix>.partner.<funder>`, bound by operations.
Subscriber queues are quorum queues named `<prefix>.<service>.<binding key>`, one per
subscriber, dead-lettering to their DLQ after DELIVERY_LIMIT failed deliveries.
The prefix is the deployment's namespace (KRING_AMQP_PREFIX); tests use their own.
"""

from collections.abc import Iterable

from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue

from shared.contract.events import Channel

# A message whose handler fails is delivered 1 + DELIVERY_LIMIT times, then dead-lettered
# with the reason (shared.messaging.consumer).
DELIVERY_LIMIT = 5
# The broker's own limit is only the backstop for a message that kills its consumer every
# time, when nothing is left to record a reason. The broker counts every return to the
# queue, also of messages held when a connection was lost (a broker restart, a replica
# killed): set to DELIVERY_LIMIT, it dead-lettered good messages held through a few broker
# restarts under load (the 150-case fault run).
BROKER_DELIVERY_LIMIT = 50


class Topology:
    def __init__(self, prefix: str = "kring") -> None:
        self.prefix = prefix
        self.unrouted = RabbitExchange(f"{prefix}.unrouted", type=ExchangeType.FANOUT)
        parked = {"alternate-exchange": self.unrouted.name}
        self.events = RabbitExchange(f"{prefix}.events", type=ExchangeType.TOPIC, arguments=parked)
        self.partner = RabbitExchange(f"{prefix}.partner", type=ExchangeType.TOPIC, arguments=parked)
        self.replies = RabbitExchange(f"{prefix}.replies", type=ExchangeType.TOPIC, arguments=parked)
        self.intake = RabbitExchange(f"{prefix}.intake", type=ExchangeType.TOPIC)
        self.dead_letter = RabbitExchange(f"{prefix}.dead-letter", type=ExchangeType.DIRECT)
        self.unrouted_queue = RabbitQueue(f"{prefix}.unrouted", queue_type=QueueType.QUORUM)

    def exchanges(self) -> tuple[RabbitExchange, ...]:
        return (self.unrouted, self.events, self.partner, self.replies, self.intake, self.dead_letter)

    def exchange_for(self, channel: Channel) -> RabbitExchange:
        return {Channel.EVENTS: self.events, Channel.PARTNER: self.partner, Channel.REPLIES: self.replies}[channel]

    def queue_name(self, service: str, binding_key: str) -> str:
        # Wildcards are not allowed in queue names: outcome.recorded.*.*.# -> ….any.any.all
        return f"{self.prefix}.{service}.{binding_key.replace('*', 'any').replace('#', 'all')}"

    def queue(self, service: str, binding_key: str, *, name: str | None = None) -> RabbitQueue:
        """The quorum queue of one subscriber, with its dead-lettering set up."""
        name = name or self.queue_name(service, binding_key)
        return RabbitQueue(
            name,
            queue_type=QueueType.QUORUM,
            routing_key=binding_key,
            arguments={
                "x-dead-letter-exchange": self.dead_letter.name,
                "x-dead-letter-routing-key": name,
                "x-delivery-limit": BROKER_DELIVERY_LIMIT,
                # Quorum queues (3.10+) can dead-letter at-least-once, never dropping.
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )

    def partner_queue_name(self, funder_id: str) -> str:
        """A funder's own queue on the partner exchange (declared and bound by operations;
        only the funder's broker user may read it)."""
        return f"{self.prefix}.partner.{funder_id}"

    def dead_letter_queue(self, queue_name: str) -> RabbitQueue:
        return RabbitQueue(f"{queue_name}.dlq", queue_type=QueueType.QUORUM, routing_key=queue_name)

    async def declare(self, broker: RabbitBroker, queues: Iterable[RabbitQueue] = ()) -> None:
        """Declare the exchanges, the parking queue and a bound DLQ for each queue.

        Idempotent; every replica runs it at start. The subscriber queues themselves are
        declared and bound by FastStream when their subscribers start.
        """
        declared = {exchange.name: await broker.declare_exchange(exchange) for exchange in self.exchanges()}
        parking = await broker.declare_queue(self.unrouted_queue)
        await parking.bind(declared[self.unrouted.name])
        for queue in queues:
            dlq = self.dead_letter_queue(queue.name)
            declared_dlq = await broker.declare_queue(dlq)
            await declared_dlq.bind(declared[self.dead_letter.name], routing_key=dlq.routing_key)
