"""The referral's pure rules: what a valid referral is, consent, withdrawal, what travels."""

from datetime import UTC, datetime

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.referral import domain, forms
from shared.contract.events import ReferralRejected
from shared.contract.vocabulary import AgeBand, ConsentingParty, ConsentState, Subject, WithdrawalReason
from shared.privacy import is_personal
from tests.support.referrals import PERSONAL_VALUES, referral_request, self_referral, submit_referral

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


def bureau_referral(**overrides: object) -> domain.Referral:
    return referral(**overrides).model_copy(update={"source_organisation_id": "bjz-1", "external_reference": "R-1"})


def test_a_changed_resubmission_is_refused_naming_the_changed_fields_never_their_values() -> None:
    first = bureau_referral()
    changed = bureau_referral(urgency="urgent", contact={**referral_request()["contact"], "phone": "+31 6 87654321"})
    assert domain.changed_fields(first.request, changed.request) == ["contact.phone", "urgency"]
    change = domain.submit(first, changed, now=NOW)
    assert change.state == first, "nothing of the new content is applied"
    [rejected] = change.events
    assert isinstance(rejected, ReferralRejected)
    assert (rejected.source_organisation_id, rejected.external_reference) == ("bjz-1", "R-1")
    assert [e.field for e in rejected.errors] == ["contact.phone", "urgency"]
    assert "87654321" not in rejected.model_dump_json() and "urgent" not in rejected.model_dump_json().replace('"urgency"', "")
    with pytest.raises(domain.RuleViolation, match="contact.phone, urgency: differs"):
        domain.open_case(first, changed)  # the HTTP route: 409


def test_an_identical_resubmission_is_answered_as_before() -> None:
    first = bureau_referral()
    assert domain.changed_fields(first.request, bureau_referral().request) == []
    assert domain.open_case(first, bureau_referral()) is None


def test_a_statutory_referral_names_its_responsible_professional_and_only_a_statutory_one() -> None:
    with pytest.raises(pydantic.ValidationError, match="names its responsible professional") as missing:
        domain.SubmitReferral.model_validate(submit_referral(responsible_professional_id=None))
    assert missing.value.errors()[0]["loc"] == ("responsible_professional_id",)
    # a referral kept from before the rule still loads (plans waits for ops to bind someone)
    assert domain.ReferralRequest.model_validate(referral_request(responsible_professional_id=None)).responsible_professional_id is None
    with pytest.raises(pydantic.ValidationError, match="only a supervision order"):
        domain.ReferralRequest.model_validate(referral_request(statutory_context="none", bottom_line_requirements=[]))
    with pytest.raises(pydantic.ValidationError, match="String should match pattern"):
        domain.ReferralRequest.model_validate(referral_request(responsible_professional_id="Mw. de Vries"))  # an id, no name


def test_the_received_event_carries_the_requirements_the_professional_and_the_subject() -> None:
    event = domain.received_event(referral(bottom_line_requirements=["Niet meer slaan.", "Elke dag naar school."]))
    assert event.bottom_line_requirements == ["Niet meer slaan.", "Elke dag naar school."]
    assert event.bottom_line_requirements_set is True
    assert event.responsible_professional_id == "gezinsvoogd-ut-1"
    assert event.subject is Subject.CHILD


def test_an_adult_or_a_household_needs_no_child_and_a_child_subject_does() -> None:
    for subject in ("adult", "household"):
        request = domain.ReferralRequest.model_validate(
            referral_request(subject=subject, children=[], statutory_context="none", bottom_line_requirements=[],
                             responsible_professional_id=None, concern_categories=["addiction"])
        )  # fmt: skip
        event = domain.received_event(domain.received("case-0123456789", request, now=NOW, channel="http", recorded_by_role="bureau"))
        assert (event.subject, event.child_age_bands) == (Subject(subject), [])
    with pytest.raises(pydantic.ValidationError, match="at least one child") as caught:
        domain.ReferralRequest.model_validate(referral_request(children=[]))
    assert caught.value.errors()[0]["loc"] == ("children",)
    with pytest.raises(pydantic.ValidationError, match="young person of 16"):  # children listed: their consent rules hold
        domain.PublicReferralRequest.model_validate(self_referral(subject="household", children=[{"age": 17}], consent={"given_by": ["parent_with_responsibility"]}))
    with pytest.raises(pydantic.ValidationError, match="concerns a child"):
        domain.ReferralRequest.model_validate(referral_request(subject="adult", children=[]))


def test_aunt_els_asks_for_a_conference_about_herself_through_the_form() -> None:
    """The seeds' own question, "how can aunt Els stay off the drink?": an adult subject."""
    values = {
        "referrer_type": ["family_member"], "contact_name": ["Els"], "contact_relation": ["aunt"], "contact_phone": ["06 12345678"],
        "province": ["UT"], "language": ["nl"], "subject": ["adult"], "children": [""], "concern_categories": ["addiction"],
        "description": ["Hoe kan tante Els van de drank afblijven?"],
    }  # fmt: skip
    request = forms.parse(values).as_referral()
    assert (request.subject, request.children) == (Subject.ADULT, [])
    with pytest.raises(pydantic.ValidationError):
        forms.parse({**values, "subject": ["child"]})
