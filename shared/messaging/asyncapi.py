"""The AsyncAPI 3.0 document of a service, built from what the service really does.

- what it receives: the subscribers on its broker (exchange, binding key, queue), each
  matched to its catalogue event, or a command registered with `service.documents_command`;
- what it sends: the events it registered with `service.documents` (shared.runtime), each
  with the exchange and routing key `shared.messaging.publisher` publishes it on;
- every message as it is on the wire: the payload is the event's data (the body, JSON), the
  CloudEvents context attributes are `cloudEvents_*` headers (shared.contract.envelope), and
  the AMQP properties the publisher sets (`x-amqp-properties`, a JSON Schema of them).

Channels are (exchange, routing key); a channel a party reads names the queue operations
declare for it (`x-kring-party-queue`). Actions are the service's (send = it publishes).
`document(service)` is served at /asyncapi.json (shared.http) and written to docs/asyncapi/
by `python -m services.asyncapi`, which also joins the parties' channels into one document.
"""

import html
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from shared.contract.envelope import ATTRIBUTES, CONTENT_TYPE, EXTENSIONS, HEADER_PREFIX, SPEC_VERSION
from shared.contract.events import CATALOGUE, Channel, Event
from shared.contract.schemas import schema_of

from .parties import BUREAU_USER_PREFIX, service_user
from .topology import DELIVERY_LIMIT, Topology

if TYPE_CHECKING:
    from shared.runtime import KringService

ASYNCAPI_VERSION = "3.0.0"
BINDING_VERSION = "0.3.0"
SCHEMAS = "#/components/schemas/"
SCHEMA_URL = "/asyncapi/schemas/{type}.json"  # where each service serves an event's JSON Schema
BROKER_DELIVERY_COUNT = "x-delivery-count"

CONVENTIONS = f"""Every event is one AMQP message: the body is the event's data as JSON (the payload
below, nothing around it); its CloudEvents 1.0 context travels in application headers
`{HEADER_PREFIX}id`, `…source`, `…type`, `…time`, `…subject` (the case id), `…specversion`,
`…datacontenttype`, `…correlationid` and, only when another message caused it, `…causationid`
(the id of that event). The AMQP properties repeat what has one: message_id = cloudEvents_id,
correlation_id = cloudEvents_correlationid, timestamp = cloudEvents_time (seconds), type =
cloudEvents_type; content_type is {CONTENT_TYPE}, delivery_mode 2 (persistent), user_id the
publisher's broker user (RabbitMQ checks it). Deduplicate by cloudEvents_id: a redelivery or
replay carries the same id. Unknown fields may be added to a payload at any time (additive
changes only; a breaking change is a new event version and a new type)."""


def _header_schema(event_type: str | None, causation: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {f"{HEADER_PREFIX}{name}": {"type": "string"} for name in ATTRIBUTES}
    properties[f"{HEADER_PREFIX}specversion"] = {"const": SPEC_VERSION}
    properties[f"{HEADER_PREFIX}time"] = {"type": "string", "format": "date-time"}
    properties[f"{HEADER_PREFIX}subject"] = {"type": "string", "description": "the case id (intake replies: <organisation>:<external reference>)"}
    properties[f"{HEADER_PREFIX}datacontenttype"] = {"const": CONTENT_TYPE}
    properties[f"{HEADER_PREFIX}correlationid"] = {"type": "string", "description": "the case (or <organisation>:<external reference>) every event of one case shares"}
    if event_type:
        properties[f"{HEADER_PREFIX}type"] = {"const": event_type}
    required = [*(f"{HEADER_PREFIX}{name}" for name in ATTRIBUTES), f"{HEADER_PREFIX}datacontenttype", f"{HEADER_PREFIX}correlationid"]
    if causation:
        properties[f"{HEADER_PREFIX}causationid"] = {
            "type": "string",
            "description": "the cloudEvents_id of the event whose handling caused this one; absent when an HTTP request, a command or a timer did",
        }
    assert set(EXTENSIONS.values()) == {"correlationid", "causationid"}
    properties[BROKER_DELIVERY_COUNT] = {
        "type": "integer",
        "description": "added by RabbitMQ when a quorum queue delivers the message, not sent by Kring: earlier deliveries of it",
    }
    return {"type": "object", "properties": properties, "required": required}


def _amqp_properties(event: type[Event]) -> dict[str, Any]:
    """The AMQP basic properties shared.messaging.publisher sets, as a JSON Schema."""
    return {
        "type": "object",
        "properties": {
            "content_type": {"const": CONTENT_TYPE},
            "delivery_mode": {"const": 2, "description": "persistent"},
            "message_id": {"type": "string", "description": "= cloudEvents_id"},
            "correlation_id": {"type": "string", "description": "= cloudEvents_correlationid"},
            "timestamp": {"type": "integer", "description": "= cloudEvents_time, in whole seconds since 1970 (UTC)"},
            "type": {"const": event.type_name()},
            "user_id": {"const": service_user(event.producer()), "description": "the producer's broker user, validated by RabbitMQ"},
        },
        "required": ["content_type", "delivery_mode", "message_id", "correlation_id", "timestamp", "type", "user_id"],
    }


def _command_properties() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "content_type": {
                "const": CONTENT_TYPE,
                "description": "required: any other content type cannot be read and the command is dead-lettered unanswered",
            },
            "delivery_mode": {"const": 2, "description": "send persistent, or a broker restart may lose the command"},
            "message_id": {"type": "string", "description": "unique per command; the same message_id again is a redelivery and changes nothing"},
            "user_id": {
                "type": "string",
                "pattern": f"^{BUREAU_USER_PREFIX}[A-Za-z0-9][A-Za-z0-9_.-]*$",
                "description": "required: your broker user bureau-<organisation> (RabbitMQ refuses another); Kring takes your organisation from it",
            },
        },
        "required": ["content_type", "user_id"],
    }


def _hoisted(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    """`model`'s JSON Schema with its definitions moved into components.schemas."""
    schema = model.model_json_schema(ref_template=SCHEMAS + "{model}")
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas[model.__name__] = schema
    return {"$ref": f"{SCHEMAS}{model.__name__}"}


def _exchange(name: str) -> dict[str, Any]:
    return {"name": name, "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"}


def _address(event: type[Event]) -> tuple[str, dict[str, Any]]:
    """The routing key an event is published with, parameters in braces."""
    if event.channel is Channel.REPLIES:
        return f"{event.binding_key().removesuffix('.*')}.{{organisation}}", {"organisation": {"description": "the bureau's organisation id (its broker user without bureau-)"}}
    if event.channel is Channel.PARTNER:
        return f"{event.name}.{{funder}}.{{province}}.{{municipality}}", {
            "funder": {"description": "funder id"},
            "province": {"description": "province code, e.g. UT"},
            "municipality": {"description": "CBS municipality code, e.g. GM0344, or none"},
        }
    return event.binding_key(), {}


def _party_queue(event: type[Event], topology: Topology) -> dict[str, Any] | None:
    if event.channel is Channel.REPLIES:
        return {
            "name": f"{topology.replies.name}.{{organisation}}",
            "binding_key": "referral.*.{organisation}",
            "reader": f"{BUREAU_USER_PREFIX}{{organisation}}-replies",
            "description": "declared and bound by operations; the only queue the reader user may consume",
        }
    if event.channel is Channel.PARTNER:
        return {
            "name": topology.partner_queue_name("{funder}"),
            "binding_key": f"{event.name}.{{funder}}.#",
            "reader": "funder-{funder}",
            "description": "a quorum queue declared and bound by operations (or a narrower slice, e.g. outcome.recorded.{funder}.UT.#); "
            "the funder's user may only consume it; replays (POST /partner/replay) go straight into it",
        }
    return None


def _event_for(exchange: str, binding_key: str, topology: Topology) -> type[Event] | None:
    for event in CATALOGUE:
        if topology.exchange_for(event.channel).name == exchange and event.binding_key() == binding_key:
            return event
    return None


class _Builder:
    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self.schemas: dict[str, Any] = {}

    def event_message(self, event: type[Event]) -> dict[str, str]:
        name = event.__name__
        if name not in self.messages:
            description = (event.__doc__ or "").strip()  # a class's own docstring only
            self.messages[name] = {
                "name": event.type_name(),
                "title": name,
                "contentType": CONTENT_TYPE,
                **({"description": description} if description else {}),
                "headers": _header_schema(event.type_name(), causation=event.channel is not Channel.REPLIES),
                "payload": _hoisted(event, self.schemas),
                "correlationId": {
                    "location": f"$message.header#/{HEADER_PREFIX}correlationid",
                    "description": "also the AMQP correlation_id property",
                },
                "bindings": {"amqp": {"messageType": event.type_name(), "bindingVersion": BINDING_VERSION}},
                "x-amqp-properties": _amqp_properties(event),
                "x-kring-json-schema": SCHEMA_URL.format(type=event.type_name()),
            }
        return {"$ref": f"#/components/messages/{name}"}

    def event_channel(self, event: type[Event]) -> str:
        key = event.type_name()
        if key not in self.channels:
            address, parameters = _address(event)
            exchange = self.topology.exchange_for(event.channel).name
            channel: dict[str, Any] = {
                "address": address,
                "title": f"{exchange} / {address}",
                "messages": {event.__name__: self.event_message(event)},
                "bindings": {"amqp": {"is": "routingKey", "exchange": _exchange(exchange), "bindingVersion": BINDING_VERSION}},
            }
            if parameters:
                channel["parameters"] = parameters
            if queue := _party_queue(event, self.topology):
                channel["x-kring-party-queue"] = queue
            self.channels[key] = channel
        return key

    def sends(self, event: type[Event]) -> None:
        channel = self.event_channel(event)
        self.operations[f"send.{event.type_name()}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{event.__name__}"}],
            "bindings": {
                "amqp": {"deliveryMode": 2, "mandatory": True, "userId": service_user(event.producer()), "bindingVersion": BINDING_VERSION}
            },
        }

    def receives(self, event: type[Event], queue: str, description: str | None) -> None:
        self._receive(f"receive.{event.type_name()}", self.event_channel(event), event.__name__, queue, description)

    def _receive(self, key: str, channel: str, message: str, queue: str, description: str | None) -> None:
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
            "bindings": {"amqp": {"ack": True, "bindingVersion": BINDING_VERSION}},
            "x-kring-queue": {
                "name": queue,
                "internal": True,
                "dead_letter_queue": f"{queue}.dlq",
                "deliveries_before_dead_letter": 1 + DELIVERY_LIMIT,
            },
        }
        if description:
            operation["description"] = description
        self.operations[key] = operation

    def receives_command(self, binding_key: str, model: type[BaseModel], queue: str, description: str | None) -> None:
        key = f"{self.topology.intake.name}.{binding_key}"
        self.messages[model.__name__] = {
            "name": binding_key,
            "title": model.__name__,
            "contentType": CONTENT_TYPE,
            "description": (model.__doc__ or "").strip(),
            "payload": _hoisted(model, self.schemas),
            "x-amqp-properties": _command_properties(),
            "x-kring-json-schema": f"/asyncapi/schemas/{binding_key}.json",
        }
        self.channels[key] = {
            "address": binding_key,
            "title": f"{self.topology.intake.name} / {binding_key}",
            "description": "Publish here: the exchange and routing key a bureau sends its commands to.",
            "messages": {model.__name__: {"$ref": f"#/components/messages/{model.__name__}"}},
            "bindings": {"amqp": {"is": "routingKey", "exchange": _exchange(self.topology.intake.name), "bindingVersion": BINDING_VERSION}},
            "x-kring-sender": f"{BUREAU_USER_PREFIX}{{organisation}}",
        }
        self._receive(f"receive.{binding_key}", key, model.__name__, queue, description)

    def components(self) -> dict[str, Any]:
        return {"messages": self.messages, "schemas": self.schemas}


def document(service: "KringService", *, server: str) -> dict[str, Any]:
    """The AsyncAPI document of `service` (a built, not necessarily started, service)."""
    topology = service.topology
    builder = _Builder(topology)
    for event in service.published:
        builder.sends(event)
    for subscriber in service.broker.subscribers:
        queue, exchange = subscriber.queue, subscriber.exchange
        # the subscriber's own description, else its handler's docstring (as FastStream does)
        description = getattr(subscriber.specification.config, "description_", None) or next(
            (call.description for call in subscriber.calls if call.description), None
        )
        if exchange.name == topology.intake.name:
            if queue.routing_key not in service.commands:
                raise LookupError(f"{service.name} reads command {queue.routing_key}: name its body with service.documents_command")
            builder.receives_command(queue.routing_key, service.commands[queue.routing_key], queue.name, description)
            continue
        event = _event_for(exchange.name, queue.routing_key, topology)
        if event is None:
            raise LookupError(f"{service.name} subscribes {exchange.name} / {queue.routing_key}: no catalogue event has that binding")
        builder.receives(event, queue.name, description)
    return _wrap(f"Kring {service.name} service", service.description, server, builder)


def _wrap(title: str, description: str, server: str, builder: _Builder) -> dict[str, Any]:
    host = server.split("://", 1)[-1].split("@")[-1].rstrip("/")
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {"title": title, "version": "1.0.0", "description": f"{description}\n\n{CONVENTIONS}".strip()},
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "kring": {
                "host": host,
                "protocol": "amqp",
                "protocolVersion": "0-9-1",
                "pathname": "/",
                "description": "operations gives each party its host, virtual host and broker user(s)",
            }
        },
        "channels": builder.channels,
        "operations": builder.operations,
        "components": builder.components(),
    }


def for_parties(documents: Iterable[dict[str, Any]], *, server: str) -> dict[str, Any]:
    """One document of what outside parties use: the intake command, the replies, the
    partner events (Kring's view: it receives the command, it sends the rest)."""
    builder = _Builder(Topology())
    for source in documents:
        for key, operation in source["operations"].items():
            channel = source["channels"][operation["channel"]["$ref"].rsplit("/", 1)[1]]
            exchange = channel["bindings"]["amqp"]["exchange"]["name"]
            public = exchange.endswith((".intake", ".replies", ".partner")) and (operation["action"] == "send" or exchange.endswith(".intake"))
            if not public:
                continue
            builder.channels[operation["channel"]["$ref"].rsplit("/", 1)[1]] = channel
            builder.operations[key] = {k: v for k, v in operation.items() if k != "x-kring-queue"}
            for message in channel["messages"].values():
                name = message["$ref"].rsplit("/", 1)[1]
                builder.messages[name] = source["components"]["messages"][name]
        builder.schemas.update(source["components"]["schemas"])
    used = _referenced(builder.messages, builder.schemas)
    builder.schemas = {name: schema for name, schema in builder.schemas.items() if name in used}
    description = (
        "What a bureau and a funder exchange with Kring: bureaus publish referral.submit on the intake exchange "
        "and read their answers from their replies queue; funders read OutcomeRecorded from their partner queue. "
        "Guides: docs/bureaus.md, docs/funders.md."
    )
    return _wrap("Kring for bureaus and funders", description, server, builder)


def _referenced(messages: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    """Names of the component schemas `messages` use, directly or through other schemas."""
    seen: set[str] = set()
    pending = [json.dumps(messages)]
    while pending:
        text = pending.pop()
        for part in text.split(f'"{SCHEMAS}')[1:]:
            name = part.split('"', 1)[0]
            if name not in seen and name in schemas:
                seen.add(name)
                pending.append(json.dumps(schemas[name]))
    return seen


def event_schemas(service: "KringService") -> dict[str, dict[str, Any]]:
    """The JSON Schemas a service's document links (`x-kring-json-schema`), by file name."""
    schemas = {f"{event.type_name()}.json": schema_of(event) for event in CATALOGUE}
    for binding_key, model in service.commands.items():
        schemas[f"{binding_key}.json"] = model.model_json_schema()
    return schemas


# --- HTML: a page people can read, no script (the policy allows none), no CDN -----------


def render_html(spec: dict[str, Any]) -> str:
    def text(value: Any) -> str:
        return html.escape(str(value))

    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{text(spec['info']['title'])} — AsyncAPI</title></head><body>",
        f"<h1>{text(spec['info']['title'])}</h1>",
        f"<p>AsyncAPI {text(spec['asyncapi'])}; the document itself: <a href=\"/asyncapi.json\">/asyncapi.json</a>.</p>",
        "".join(f"<p>{text(paragraph)}</p>" for paragraph in spec["info"]["description"].split("\n\n")),
    ]
    for key, operation in sorted(spec["operations"].items()):
        channel = spec["channels"][operation["channel"]["$ref"].rsplit("/", 1)[1]]
        exchange = channel["bindings"]["amqp"]["exchange"]["name"]
        parts.append(f"<h2 id=\"{text(key)}\">{text(operation['action'])}: {text(exchange)} / {text(channel['address'])}</h2>")
        if operation.get("description"):
            parts.append(f"<p>{text(operation['description'])}</p>")
        if party := channel.get("x-kring-party-queue"):
            parts.append(f"<p>Read from queue <code>{text(party['name'])}</code> (bound with <code>{text(party['binding_key'])}</code>, user <code>{text(party['reader'])}</code>): {text(party['description'])}.</p>")
        if queue := operation.get("x-kring-queue"):
            parts.append(f"<p>Kring's own queue <code>{text(queue['name'])}</code> (dead letters: <code>{text(queue['dead_letter_queue'])}</code>).</p>")
        for reference in operation["messages"]:
            name = channel["messages"][reference["$ref"].rsplit("/", 1)[1]]["$ref"].rsplit("/", 1)[1]
            message = spec["components"]["messages"][name]
            parts.append(f"<h3>{text(message['title'])} <code>{text(message['name'])}</code></h3>")
            if message.get("description"):
                parts.append(f"<p>{text(message['description'])}</p>")
            parts.append(f"<p>JSON Schema of the body: <a href=\"{text(message['x-kring-json-schema'])}\">{text(message['x-kring-json-schema'])}</a></p>")
            for title, schema in (("AMQP properties", message["x-amqp-properties"]), ("Headers", message.get("headers"))):
                if schema:
                    rows = "".join(
                        f"<tr><td><code>{text(field)}</code></td><td>{'required' if field in schema.get('required', []) else 'optional'}</td>"
                        f"<td>{text(json.dumps({k: v for k, v in rule.items() if k != 'description'}))} {text(rule.get('description', ''))}</td></tr>"
                        for field, rule in schema["properties"].items()
                    )
                    parts.append(f"<h4>{title}</h4><table><tr><th>name</th><th></th><th>value</th></tr>{rows}</table>")
            payload = spec["components"]["schemas"][message["payload"]["$ref"].rsplit("/", 1)[1]]
            parts.append(f"<h4>Body</h4><pre>{text(json.dumps(payload, indent=2, ensure_ascii=False))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
