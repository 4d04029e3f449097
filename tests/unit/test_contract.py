"""The event catalogue as a published contract: schemas checked in, no breaking change, no PII."""

from typing import Any

from pydantic import BaseModel

from shared.contract.compat import breaking_changes
from shared.contract.events import CATALOGUE, BY_TYPE, Channel, ReferralReceived
from shared.contract.schemas import checked_in, problems, schema_of
from shared.privacy import is_personal


def test_checked_in_schemas_match_the_models_and_nothing_breaks() -> None:
    breaking, stale = problems()
    assert breaking == [], "breaking changes: publish a new event version instead"
    assert stale == [], "run: python -m shared.contract.schemas"


def test_every_event_has_a_unique_type_and_routing_key() -> None:
    assert len({event.type_name() for event in CATALOGUE}) == len(CATALOGUE)
    assert len({event.binding_key() for event in CATALOGUE}) == len(CATALOGUE)
    assert set(BY_TYPE) == {event.type_name() for event in CATALOGUE}


def _field_names(model: type[BaseModel]) -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        names.add(name)
        for candidate in _nested_models(field.annotation):
            names |= _field_names(candidate)
    return names


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in getattr(annotation, "__args__", ()) for model in _nested_models(arg)]


def test_no_event_carries_a_personal_field() -> None:
    offenders = {
        event.__name__: sorted(name for name in _field_names(event) if is_personal(name))
        for event in CATALOGUE
    }
    assert {event: names for event, names in offenders.items() if names} == {}


def test_funder_facing_events_are_only_on_the_partner_exchange() -> None:
    partner = [event.__name__ for event in CATALOGUE if event.channel is Channel.PARTNER]
    assert partner == ["OutcomeRecorded"]


# --- the compatibility check itself, on deliberate variants of a published schema -----------


def _published_referral_received() -> dict[str, Any]:
    return checked_in()[f"{ReferralReceived.type_name()}.json"]


def _variant(**fields: Any) -> dict[str, Any]:
    """ReferralReceived's schema with fields added or replaced (None removes one)."""
    from pydantic import create_model

    overrides = {name: spec for name, spec in fields.items() if spec is not None}
    base = create_model("ReferralReceived", __base__=ReferralReceived, **overrides)
    schema = schema_of(base)
    for name, spec in fields.items():
        if spec is None:
            schema["properties"].pop(name)
            schema["required"] = [r for r in schema.get("required", []) if r != name]
    return schema


def test_removing_a_field_is_breaking() -> None:
    assert breaking_changes(_published_referral_received(), _variant(language=None)) == [
        "language: removed"
    ]


def test_retyping_a_field_is_breaking() -> None:
    changes = breaking_changes(_published_referral_received(), _variant(interpreter_needed=(int, 0)))
    assert changes == ["interpreter_needed: retyped from boolean to integer"]


def test_a_new_required_field_is_breaking() -> None:
    changes = breaking_changes(_published_referral_received(), _variant(household_size=(int, ...)))
    assert changes == ["household_size: new required field"]


def test_making_a_field_optional_or_nullable_is_breaking_for_consumers() -> None:
    changes = breaking_changes(_published_referral_received(), _variant(funder_id=(str | None, None)))
    assert "funder_id: may now be null" in changes
    assert "funder_id: no longer required" in changes


def test_a_nested_change_names_its_path() -> None:
    old = _published_referral_received()
    new = _variant()
    new["$defs"]["Region"]["properties"]["province"] = {"type": "integer"}
    assert breaking_changes(old, new) == ["region.province: retyped from enum to integer"]


def test_narrowing_an_enum_is_breaking_and_widening_is_not() -> None:
    old = _published_referral_received()
    narrowed = _variant()
    narrowed["$defs"]["Urgency"]["enum"] = narrowed["$defs"]["Urgency"]["enum"][:-1]
    assert len(breaking_changes(old, narrowed)) == 1
    widened = _variant()
    widened["$defs"]["Urgency"]["enum"].append("extreme")
    assert breaking_changes(old, widened) == []


def test_a_new_optional_field_is_additive() -> None:
    assert breaking_changes(_published_referral_received(), _variant(household_size=(int | None, None))) == []


def test_confidential_texts_travel_only_between_kring_services() -> None:
    """The bottom-line requirements' texts reach plans on the internal exchange; no
    funder-facing event, no reply to a bureau carries them."""
    from shared.privacy import CONFIDENTIAL_FIELDS

    carriers = {event.__name__: event.channel for event in CATALOGUE if _field_names(event) & CONFIDENTIAL_FIELDS}
    assert "ReferralReceived" in carriers  # (PlanPresented's field of that name is a count)
    assert set(carriers.values()) == {Channel.EVENTS}
