"""The CloudEvents envelope and its AMQP mapping (pure, no I/O)."""

import json

import pydantic
import pytest

from shared.contract.envelope import (
    Envelope,
    InvalidMessage,
    amqp_body,
    amqp_headers,
    envelope_from_amqp,
)
from shared.contract.events import OutcomeRecorded, ReferralReceived, ReferralWithdrawn
from tests.support.samples import referral_received


def test_an_envelope_survives_the_trip_through_amqp() -> None:
    cause = Envelope.wrap(referral_received(), source="kring/referral")
    envelope = Envelope.wrap(
        ReferralWithdrawn(case_id=cause.subject, withdrawn_at=cause.time, reason="family_declined"),
        source="kring/referral",
        cause=cause,
    )
    dumped = envelope.model_dump(mode="json")
    headers = amqp_headers(dumped)
    assert headers["cloudEvents_specversion"] == "1.0"
    assert headers["cloudEvents_type"] == "nl.kring.referral.withdrawn.v1"
    assert headers["cloudEvents_subject"] == cause.subject
    assert headers["cloudEvents_causationid"] == cause.id
    assert headers["cloudEvents_correlationid"] == cause.correlation_id == cause.subject
    assert json.loads(amqp_body(dumped)) == dumped["data"]

    decoded = envelope_from_amqp(headers, amqp_body(dumped), "application/json")
    assert Envelope[ReferralWithdrawn].model_validate(decoded) == envelope


def test_an_event_of_another_type_or_version_is_refused() -> None:
    envelope = Envelope.wrap(referral_received(), source="kring/referral").model_dump(mode="json")
    envelope["type"] = "nl.kring.referral.received.v2"
    with pytest.raises(pydantic.ValidationError, match="is not 'nl.kring.referral.received.v1'"):
        Envelope[ReferralReceived].model_validate(envelope)


def test_a_subject_that_is_not_the_case_is_refused() -> None:
    envelope = Envelope.wrap(referral_received(), source="kring/referral").model_dump(mode="json")
    envelope["subject"] = "case-someoneelse0000"
    with pytest.raises(pydantic.ValidationError, match="subject"):
        Envelope[ReferralReceived].model_validate(envelope)


@pytest.mark.parametrize(
    ("headers", "body", "content_type", "reason"),
    [
        ({}, b"{}", "application/json", "missing CloudEvents header"),
        (None, b"{}", None, "missing CloudEvents header"),
        ("valid", b"{not json", "application/json", "not valid JSON"),
        ("valid", b"\xff\xfe", "application/json", "not valid JSON"),
        ("valid", b"[1, 2]", "application/json", "not a JSON object"),
        ("valid", b"{}", "text/plain", "content type"),
        ({"cloudEvents_id": b"\xff", **{f"cloudEvents_{a}": "x" for a in ("source", "type", "time", "subject", "specversion")}}, b"{}", None, "not UTF-8"),
        ({"cloudEvents_id": {"a": 1}, **{f"cloudEvents_{a}": "x" for a in ("source", "type", "time", "subject", "specversion")}}, b"{}", None, "has type dict"),
    ],
)
def test_undecodable_messages_raise_invalid_message(headers, body, content_type, reason) -> None:
    if headers == "valid":
        headers = amqp_headers(Envelope.wrap(referral_received(), source="t").model_dump(mode="json"))
    with pytest.raises(InvalidMessage, match=reason):
        envelope_from_amqp(headers, body, content_type)


def test_outcome_routing_key_carries_funder_and_region() -> None:
    outcome = OutcomeRecorded(
        pseudonym="ab" * 32,
        funder_id="gemeente-amsterdam",
        region={"province": "NH", "municipality": "GM0363"},
        period="2026-Q4",
        concern_categories=["housing"],
        meeting_count=1,
        execution_status="in_progress_partly",
    )
    assert outcome.routing_key() == "outcome.recorded.gemeente-amsterdam.NH.GM0363"
    assert OutcomeRecorded.funder_binding_key("gemeente-amsterdam", "NH") == "outcome.recorded.gemeente-amsterdam.NH.#"
    assert Envelope.wrap(outcome, source="kring/followup").channel == "partner"


def test_a_partner_event_correlates_by_the_pseudonym_and_names_no_internal_cause() -> None:
    cause = Envelope.wrap(referral_received(), source="kring/referral")
    outcome = OutcomeRecorded(
        pseudonym="cd" * 32, funder_id="gm-a", region={"province": "NH"}, period="2026-Q4",
        concern_categories=["housing"], meeting_count=1, execution_status="in_progress_partly",
    )  # fmt: skip
    envelope = Envelope.wrap(outcome, source="kring/followup", cause=cause)
    assert envelope.subject == envelope.correlation_id == "cd" * 32 and envelope.causation_id is None
    headers = amqp_headers(envelope.model_dump(mode="json"))
    assert cause.subject not in str(headers) and cause.id not in str(headers)
    internal = Envelope.wrap(referral_received(), source="kring/referral", cause=cause)
    assert (internal.correlation_id, internal.causation_id) == (cause.correlation_id, cause.id)
