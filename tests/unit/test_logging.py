"""Personal data never reaches the logs."""

import io
import json
import logging

import pydantic
import pytest
import structlog

from shared.logging import bind_message_context, configure_logging, get_logger
from shared.messaging.consumer import describe_invalid
from shared.privacy import REDACTED

# What a referral holds about a family (shape as the referral service will store it).
REFERRAL = {
    "case_id": "case-0123456789abcdef",
    "referrer": {"type": "school", "organisation_id": "school-42", "contact_name": "Mw. A. de Vries"},
    "contact_person": {
        "first_name": "Fatima",
        "last_name": "El Amrani",
        "phone": "06-12345678",
        "email": "fatima@example.nl",
        "address": {"street": "Kerkstraat", "house_number": "12a", "postcode": "1017 GA"},
    },
    "children": [{"name": "Noor", "date_of_birth": "2015-04-01", "age_band": "4-11"}],
    "description": "Vader in behandeling voor verslaving; schulden bij de woningcorporatie.",
    "region": {"province": "NH", "municipality": "GM0363"},
}
PERSONAL_VALUES = [
    "Mw. A. de Vries", "Fatima", "El Amrani", "06-12345678", "fatima@example.nl", "Kerkstraat",
    "12a", "1017 GA", "Noor", "2015-04-01", "Vader in behandeling",
]  # fmt: skip


class Child(pydantic.BaseModel):
    name: str
    age_band: str


@pytest.fixture
def output():
    stream = io.StringIO()
    configure_logging("referral", "DEBUG", stream=stream)
    yield stream
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_referral_logged_every_way_shows_no_personal_value(output: io.StringIO) -> None:
    log = get_logger("test")
    with bind_message_context(event_id="evt-1", correlation_id="case-0123456789abcdef"):
        log.info("referral received", referral=REFERRAL)
        log.warning("child", child=Child(name="Noor", age_band="4-11"), **REFERRAL["contact_person"])
    logging.getLogger("uvicorn").info("stdlib line", extra={"referral": REFERRAL, "phone": "06-12345678"})
    logging.getLogger("faststream").error("failed", extra={"description": REFERRAL["description"]})

    text = output.getvalue()
    for value in PERSONAL_VALUES:
        assert value not in text, f"{value!r} leaked into the logs"
    logged = lines(output)
    assert len(logged) == 4
    # ...while what operations need is still there:
    first = logged[0]
    assert first["event_id"] == "evt-1" and first["correlation_id"] == "case-0123456789abcdef"
    assert first["service"] == "referral" and first["level"] == "info"
    assert first["referral"]["region"] == {"province": "NH", "municipality": "GM0363"}
    assert first["referral"]["children"][0] == {"name": REDACTED, "date_of_birth": REDACTED, "age_band": "4-11"}
    assert logged[1]["child"] == {"name": REDACTED, "age_band": "4-11"}
    assert logged[2]["referral"]["case_id"] == "case-0123456789abcdef"


def test_a_validation_error_is_described_without_the_values(output: io.StringIO) -> None:
    class Contact(pydantic.BaseModel):
        phone: int
        email: int

    with pytest.raises(pydantic.ValidationError) as raised:
        Contact.model_validate({"phone": "06-12345678", "email": "fatima@example.nl"})
    reason = describe_invalid(raised.value)
    assert "phone" in reason and "email" in reason
    assert "06-12345678" not in reason and "fatima@example.nl" not in reason


def test_bottom_line_requirements_travel_between_services_but_never_into_the_logs(output: io.StringIO) -> None:
    from shared.contract.events import ReferralReceived
    from tests.support.samples import referral_received

    text = "Vader komt niet meer in huis."
    event = referral_received().model_copy(update={"bottom_line_requirements": [text]})
    assert isinstance(event, ReferralReceived)
    get_logger("test").info("event", data=event.model_dump(mode="json"), bottom_line_requirements=[text])
    assert text not in output.getvalue()
    assert lines(output)[0]["data"]["bottom_line_requirements"] == REDACTED
