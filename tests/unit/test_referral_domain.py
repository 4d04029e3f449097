"""The referral's pure rules: what a valid referral is, consent, withdrawal, what travels."""

from datetime import UTC, datetime

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.referral import domain, forms
from shared.contract.vocabulary import AgeBand, ConsentingParty, ConsentState, WithdrawalReason
from shared.privacy import is_personal
from tests.support.referrals import PERSONAL_VALUES, referral_request, self_referral

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def referral(**overrides: object) -> domain.Referral:
    request = domain.ReferralRequest.model_validate(referral_request(**overrides))
    return domain.received("case-0123456789", request, now=NOW, channel="http", recorded_by_role="bureau")


@given(st.integers(min_value=0, max_value=23))
def test_every_age_has_exactly_the_band_it_falls_in(age: int) -> None:
    band = domain.Child(age=age).age_band
    expected = [AgeBand.AGE_0_3] * 4 + [AgeBand.AGE_4_11] * 8 + [AgeBand.AGE_12_15] * 4 + [AgeBand.AGE_16_17] * 2
    assert band == (expected[age] if age < len(expected) else AgeBand.ADULT)


def test_an_expected_child_is_unborn_and_a_child_needs_age_or_expected() -> None:
    assert domain.Child(expected=True).age_band is AgeBand.UNBORN
    with pytest.raises(pydantic.ValidationError):
        domain.Child()
    with pytest.raises(pydantic.ValidationError):
        domain.Child(age=3, expected=True)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"referrer": {"type": "school"}}, "organisation_id is required"),
        ({"funder_id": None}, "funder_id is required"),
        ({"statutory_context": "voluntary_help", "responsible_professional_id": None}, "bottom_line_requirements need"),
        ({"children": [{"age": 16}]}, "young person of 16"),
        ({"contact": {"name": "A", "relation": "mother"}}, "phone number or an e-mail"),
    ],
)
def test_rules_across_fields(overrides: dict[str, object], problem: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=problem):
        domain.ReferralRequest.model_validate(referral_request(**overrides))


def test_a_family_need_not_know_who_pays() -> None:
    request = domain.PublicReferralRequest.model_validate(self_referral()).as_referral()
    assert (request.funder_id, request.statutory_context, request.referrer.organisation_id) == ("GM0344", "none", None)
    request = domain.PublicReferralRequest.model_validate(self_referral(region={"province": "FR"})).as_referral()
    assert request.funder == "province-FR"


@pytest.mark.parametrize(
    "field, value",
    [
        ("funder_id", "prov-utrecht"),
        ("statutory_context", "supervision_order"),
        ("bottom_line_requirements", ["x"]),
        ("referrer", {"type": "self", "organisation_id": "bjz-utrecht"}),
        ("referrer", {"type": "youth_care_bureau"}),
    ],
)
def test_the_public_says_nothing_of_who_pays_the_statutory_context_or_an_organisation(field: str, value: object) -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        domain.PublicReferralRequest.model_validate(self_referral(**{field: value}))
    assert any(error["loc"][0] == field for error in raised.value.errors())


def test_an_anonymous_self_referral_is_announced_only_when_intake_accepts_it() -> None:
    request = domain.PublicReferralRequest.model_validate(self_referral()).as_referral()
    new = domain.received("case-0001", request, now=NOW, channel="http", recorded_by_role="family", anonymous=True)
    opened = domain.open_case(None, new)
    assert opened is not None and opened.events == [] and not opened.state.intake_accepted
    consented = domain.give_consent(opened.state, domain.ConsentGiven(given_by=["parent_with_responsibility"]), now=NOW, role="family")
    assert consented is not None and consented.events == []
    accepted = domain.accept_intake(consented.state, now=NOW)
    assert accepted is not None and accepted.state.intake_accepted
    [event] = accepted.events
    assert event.name == "referral.received" and event.consent == "given"
    assert domain.accept_intake(accepted.state, now=NOW) is None
    assert domain.may_read_contact("ops", "ops-1", consented.state) and not domain.may_read_contact("ops", "ops-1", accepted.state)


def test_a_self_referral_withdrawn_before_intake_announces_nothing_and_cannot_be_accepted() -> None:
    request = domain.PublicReferralRequest.model_validate(self_referral()).as_referral()
    new = domain.received("case-0001", request, now=NOW, channel="http", recorded_by_role="family", anonymous=True)
    withdrawn = domain.withdraw(new, domain.WithdrawalReason.CONSENT_WITHDRAWN, now=NOW, role="family")
    assert withdrawn.events == []
    with pytest.raises(domain.RuleViolation):
        domain.accept_intake(withdrawn.state, now=NOW)


def test_the_received_event_carries_no_personal_data() -> None:
    event = domain.received_event(referral())
    dumped = event.model_dump_json()
    assert not any(value in dumped for value in PERSONAL_VALUES)
    assert not any(is_personal(name) for name in event.model_dump())
    assert event.child_age_bands == [AgeBand.AGE_4_11, AgeBand.AGE_4_11, AgeBand.AGE_12_15]


def test_consent_is_recorded_once_and_withdrawal_ends_the_referral() -> None:
    pending = referral(consent=None)
    assert pending.consent_state is ConsentState.PENDING
    given_ = domain.give_consent(pending, domain.ConsentGiven(given_by=[ConsentingParty.PARENT_WITH_RESPONSIBILITY]), now=NOW, role="family")
    assert given_ is not None and given_.state.consent_state is ConsentState.GIVEN
    same_again = domain.give_consent(given_.state, domain.ConsentGiven(given_by=[ConsentingParty.PARENT_WITH_RESPONSIBILITY]), now=NOW, role="family")
    assert same_again is None
    withdrawn = domain.withdraw(given_.state, WithdrawalReason.CONSENT_WITHDRAWN, now=NOW, role="family")
    assert [type(e).__name__ for e in withdrawn.events] == ["ConsentRecorded", "ReferralWithdrawn"]
    assert not withdrawn.state.active
    with pytest.raises(domain.RuleViolation):
        domain.withdraw(withdrawn.state, WithdrawalReason.OTHER, now=NOW, role="ops")
    with pytest.raises(domain.RuleViolation):
        domain.give_consent(withdrawn.state, domain.ConsentGiven(given_by=[ConsentingParty.YOUNG_PERSON]), now=NOW, role="family")


def test_a_resubmission_answers_the_existing_case_without_a_new_event() -> None:
    first = referral()
    first = first.model_copy(update={"source_organisation_id": "bjz-1", "external_reference": "R-1"})
    change = domain.submit(first, first, now=NOW)
    assert [type(e).__name__ for e in change.events] == ["ReferralAccepted"]
    assert change.events[0].resubmission is True


def test_form_problems_are_shown_at_their_inputs() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        forms.parse({"referrer_type": ["self"], "children": ["4, tien"], "province": ["XX"]})
    from shared.http import field_errors

    errors = forms.errors_by_input(field_errors(caught.value.errors()))
    assert {"contact_name", "children", "province", "concern_categories", "description", "language"} <= set(errors)
