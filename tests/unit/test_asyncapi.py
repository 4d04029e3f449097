"""The AsyncAPI documents: checked in as generated, covering every event of the catalogue
where it is really sent and received, and naming what a party really uses (the intake
exchange and routing key, the replies and partner exchanges with the parties' queues)."""

import json

from services.asyncapi import DOCS, PARTIES, SERVICES, documents, service
from shared.contract.envelope import HEADER_PREFIX
from shared.contract.events import CATALOGUE, Channel
from shared.messaging.asyncapi import for_parties
from shared.runtime import PUBLISHED_BROKER


def test_checked_in_asyncapi_documents_match_the_services() -> None:
    expected = documents()
    stale = [name for name, text in expected.items() if not (DOCS / name).exists() or (DOCS / name).read_text() != text]
    leftover = [str(p.relative_to(DOCS)) for p in DOCS.rglob("*") if p.is_file() and str(p.relative_to(DOCS)) not in expected]
    assert stale == [] and leftover == [], "run: python -m services.asyncapi"


def test_every_catalogue_event_is_documented_as_sent_by_its_producer_and_received_where_subscribed() -> None:
    specifications = {name: service(name).asyncapi() for name in SERVICES}
    for event in CATALOGUE:
        operations = specifications[event.producer()]["operations"]
        assert f"send.{event.type_name()}" in operations, f"{event.__name__}: service.documents() it in {event.producer()}/app.py"
    for name in SERVICES:
        kring = service(name)
        received = {key for key in specifications[name]["operations"] if key.startswith("receive.")}
        assert len(received) == len(kring.broker.subscribers), f"{name}: a subscriber is not in its document"


def test_messages_describe_the_wire_not_an_envelope_model() -> None:
    for name in SERVICES:
        text = json.dumps(service(name).asyncapi())
        assert "Envelope" not in text, "the body on the wire is the event's data, not an envelope"
        assert "$message.header#/correlation_id" not in text
        for message in json.loads(text)["components"]["messages"].values():
            if "headers" in message:
                assert message["correlationId"]["location"] == f"$message.header#/{HEADER_PREFIX}correlationid"
                assert f"{HEADER_PREFIX}id" in message["headers"]["required"]
            properties = message["x-amqp-properties"]["properties"]
            assert properties["content_type"] == {**properties["content_type"], "const": "application/json"}


def test_the_parties_document_names_the_intake_exchange_the_replies_and_the_partner_queues() -> None:
    parties = for_parties([service(name).asyncapi() for name in SERVICES], server=PUBLISHED_BROKER)
    channels = parties["channels"]
    intake = channels["kring.intake.referral.submit"]
    assert intake["address"] == "referral.submit" and intake["bindings"]["amqp"]["exchange"]["name"] == "kring.intake"
    assert intake["bindings"]["amqp"]["is"] == "routingKey", "a bureau publishes to the exchange, not to an internal queue"
    assert "queue" not in json.dumps(intake["bindings"])
    party_events = {event for event in CATALOGUE if event.channel in (Channel.REPLIES, Channel.PARTNER)}
    assert {key for key in channels if key.startswith("nl.kring.")} == {event.type_name() for event in party_events}
    assert channels["nl.kring.referral.accepted.v1"]["x-kring-party-queue"]["binding_key"] == "referral.*.{organisation}"
    partner = channels["nl.kring.outcome.recorded.v2"]
    assert partner["bindings"]["amqp"]["exchange"]["name"] == "kring.partner"
    assert partner["x-kring-party-queue"]["name"] == "kring.partner.{funder}"
    assert all(operation["action"] == "send" for key, operation in parties["operations"].items() if key.startswith("send."))
    assert "internal" not in json.dumps(parties["operations"]), "no internal queue in what outsiders read"
    assert (DOCS / PARTIES).exists()
