"""The CloudEvents 1.0 envelope and its mapping onto AMQP 0-9-1 (binary content mode).

On the wire the body is the event's `data` as JSON; the context attributes travel as
application headers with the ``cloudEvents_`` prefix (CloudEvents AMQP binding) and,
where AMQP has a matching property, in that property too (message_id = id,
correlation_id, timestamp = time, type; shared.messaging.publisher sets them). Readers take
the headers. `causation_id` is sent only when another event caused this one.
"""

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from shared.errors import InvalidInput

from .events import Channel, Event

HEADER_PREFIX = "cloudEvents_"
CONTENT_TYPE = "application/json"
SPEC_VERSION = "1.0"

ATTRIBUTES = ("id", "source", "type", "time", "subject", "specversion")
EXTENSIONS = {"correlation_id": "correlationid", "causation_id": "causationid"}

E = TypeVar("E", bound=Event)


class InvalidMessage(InvalidInput):
    """A message that can never be processed: it goes to the dead-letter queue."""


class Envelope(BaseModel, Generic[E]):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(min_length=1, max_length=100)
    source: str = Field(min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=200)
    time: AwareDatetime
    subject: str = Field(min_length=1, max_length=200)
    specversion: Literal["1.0"] = SPEC_VERSION
    correlation_id: str = Field(min_length=1, max_length=100)
    causation_id: str | None = Field(default=None, max_length=100)
    data: E

    @model_validator(mode="after")
    def _type_and_subject_match_data(self) -> "Envelope[E]":
        expected = type(self.data).type_name()
        if self.type != expected:
            raise ValueError(f"type {self.type!r} is not {expected!r}")
        if self.subject != self.data.cloudevents_subject():
            raise ValueError("subject does not match the event's subject")
        return self

    @classmethod
    def wrap(
        cls,
        data: E,
        *,
        source: str,
        cause: "Envelope[Any] | None" = None,
        time: datetime | None = None,
    ) -> "Envelope[E]":
        """A new envelope for `data`, caused by `cause` (same correlation) if given.

        A partner event (for funders) correlates by its own subject, the funder's pseudonym,
        and names no cause: the internal correlation id is the case id, the cause an internal
        message, and neither may reach a funder."""
        internal = type(data).channel is not Channel.PARTNER
        return Envelope[type(data)](  # type: ignore[misc]
            id=str(uuid.uuid4()),
            source=source,
            type=data.type_name(),
            time=time or datetime.now(UTC),
            subject=data.cloudevents_subject(),
            correlation_id=cause.correlation_id if cause and internal else data.cloudevents_subject(),
            causation_id=cause.id if cause and internal else None,
            data=data,
        )

    @property
    def channel(self) -> str:
        return type(self.data).channel.value

    @property
    def routing_key(self) -> str:
        return self.data.routing_key()


def amqp_headers(envelope: Mapping[str, Any]) -> dict[str, str]:
    """Application headers for a JSON-dumped envelope (see `Envelope.model_dump(mode="json")`)."""
    headers = {f"{HEADER_PREFIX}{name}": str(envelope[name]) for name in ATTRIBUTES}
    headers[f"{HEADER_PREFIX}datacontenttype"] = CONTENT_TYPE
    for field, extension in EXTENSIONS.items():
        if envelope.get(field) is not None:
            headers[f"{HEADER_PREFIX}{extension}"] = str(envelope[field])
    return headers


def amqp_body(envelope: Mapping[str, Any]) -> bytes:
    return json.dumps(envelope["data"], separators=(",", ":"), ensure_ascii=False).encode()


def envelope_from_amqp(
    headers: Mapping[str, Any] | None, body: bytes, content_type: str | None
) -> dict[str, Any]:
    """The envelope as a plain dict, ready for `Envelope[SomeEvent].model_validate`.

    Raises InvalidMessage with a reason that names no data values (reasons end up in
    logs and dead-letter headers, data may be personal).
    """
    if content_type not in (None, CONTENT_TYPE):
        raise InvalidMessage(f"content type {content_type!r} is not {CONTENT_TYPE}")
    headers = headers or {}
    envelope: dict[str, Any] = {}
    missing = []
    for name in ATTRIBUTES:
        value = headers.get(f"{HEADER_PREFIX}{name}")
        if value is None:
            missing.append(f"{HEADER_PREFIX}{name}")
        else:
            envelope[name] = _header_text(value)
    if missing:
        raise InvalidMessage(f"missing CloudEvents header(s): {', '.join(missing)}")
    for field, extension in EXTENSIONS.items():
        value = headers.get(f"{HEADER_PREFIX}{extension}")
        if value is not None:
            envelope[field] = _header_text(value)
    try:
        envelope["data"] = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidMessage(f"body is not valid JSON ({type(error).__name__})") from None
    if not isinstance(envelope["data"], dict):
        raise InvalidMessage("body is not a JSON object")
    return envelope


def _header_text(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise InvalidMessage("a CloudEvents header is not UTF-8") from None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise InvalidMessage(f"a CloudEvents header has type {type(value).__name__}")
