"""The plans service's pure rules: requirements answered, acceptance, what is counted."""

from datetime import UTC, date, datetime

import pytest

from services.plans import domain
from shared.contract.events import PlanAccepted, PlanRevisionRequested
from shared.contract.vocabulary import StatutoryContext
from shared.errors import Forbidden, InvalidInput

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def agreement(n: int, *answers: str, kind: str = "network_support") -> domain.Agreement:
    return domain.Agreement(agreement_id=f"a{n}", what="iets", who="friend", by_when=date(2027, 1, 1), kind=kind, answers_requirements=list(answers))


def presented_plan(*agreements: domain.Agreement) -> domain.CasePlan:
    plan = domain.referral_received(None, "case-12345678", StatutoryContext.SUPERVISION_ORDER, received_at=NOW, professional_id="prof").state
    plan = domain.conference_scheduled(plan, plan.case_id, 1, date(2026, 12, 1)).state  # type: ignore[union-attr]
    for text in ("school", "avond"):
        plan = domain.add_requirement(plan, domain.NewRequirement(text=text, shared_with_family_at=NOW), "prof", NOW).state  # type: ignore[union-attr]
    plan = domain.conference_held(plan, plan.case_id, 1, date(2026, 12, 1)).state  # type: ignore[union-attr]
    plan = domain.record_plan(plan, domain.PlanDraft(central_question="?", agreements=list(agreements))).state
    return domain.present(plan, NOW).state


def test_every_requirement_answered_is_accepted() -> None:
    change = domain.review(presented_plan(agreement(1, "r1"), agreement(2, "r2")), "prof", None, NOW)
    assert isinstance(change.events[0], PlanAccepted) and not change.events[0].accepted_with_justification


def test_an_unanswered_requirement_asks_for_a_revision_unless_justified() -> None:
    plan = presented_plan(agreement(1, "r1"))
    change = domain.review(plan, "prof", None, NOW)
    assert isinstance(change.events[0], PlanRevisionRequested) and change.events[0].unmet_requirement_ids == ["r2"]
    justified = domain.review(plan, "prof", "the school is closed for renovation until March", NOW)
    assert isinstance(justified.events[0], PlanAccepted) and justified.events[0].accepted_with_justification


def test_only_the_responsible_professional_reviews_and_requirements_close_at_the_conference() -> None:
    plan = presented_plan(agreement(1, "r1", "r2"))
    with pytest.raises(Forbidden):
        domain.review(plan, "someone-else", None, NOW)
    with pytest.raises(domain.RuleViolation):
        domain.add_requirement(plan, domain.NewRequirement(text="late", shared_with_family_at=NOW), "prof", NOW)


def test_an_agreement_cannot_answer_a_requirement_that_does_not_exist() -> None:
    plan = presented_plan(agreement(1, "r1", "r2"))
    plan = domain.review(plan, "prof", None, NOW).state
    plan = plan.model_copy(update={"meetings": [plan.meetings[0].model_copy(update={"status": domain.MeetingStatus.HELD})]})
    with pytest.raises(InvalidInput, match="unknown requirements: r9"):
        domain.record_plan(plan, domain.PlanDraft(central_question="?", agreements=[agreement(1, "r9")]))


def test_counts_by_kind() -> None:
    draft = domain.PlanDraft(central_question="?", agreements=[agreement(1), agreement(2), agreement(3, kind="professional_help")])
    assert domain.counts(draft).model_dump() == {"network_support": 2, "professional_help": 1}


def test_a_conference_held_before_its_scheduling_arrives_opens_the_meeting_as_held() -> None:
    plan = domain.conference_held(None, "case-12345678", 1, date(2026, 12, 1)).state
    assert [(m.number, m.status) for m in plan.meetings] == [(1, domain.MeetingStatus.HELD)]
    late = domain.conference_scheduled(plan, plan.case_id, 1, date(2026, 12, 1))
    assert late is not None and late.state.meetings[0].status is domain.MeetingStatus.HELD


def test_a_cancellation_before_its_scheduling_arrives_opens_the_meeting_as_cancelled() -> None:
    plan = domain.conference_cancelled(None, "case-12345678", 1).state
    assert plan.meetings == [] and plan.cancelled_meetings == [1]
    late = domain.conference_scheduled(plan, plan.case_id, 1, date(2026, 12, 1))
    assert late is not None and [(m.number, m.status) for m in late.state.meetings] == [(1, domain.MeetingStatus.CANCELLED)]
    with pytest.raises(domain.RuleViolation):
        domain.record_plan(late.state, domain.PlanDraft(central_question="?", agreements=[agreement(1)]))


def test_a_cancellation_after_the_scheduling_cancels_only_a_planned_meeting() -> None:
    plan = domain.conference_scheduled(None, "case-12345678", 1, date(2026, 12, 1)).state  # type: ignore[union-attr]
    plan = domain.conference_cancelled(plan, plan.case_id, 1).state
    assert [m.status for m in plan.meetings] == [domain.MeetingStatus.CANCELLED] and plan.cancelled_meetings == []
    held = domain.conference_held(None, "case-12345678", 1, date(2026, 12, 1)).state  # type: ignore[union-attr]
    assert domain.conference_cancelled(held, held.case_id, 1).state.meetings[0].status is domain.MeetingStatus.HELD


def test_a_requirement_sent_again_is_not_set_twice() -> None:
    """A 2,000-case fault run: the professional's resend after a 503 whose write had taken
    effect added r3, a copy of r2 that no agreement answered, and the review asked for a
    revision the family never got to make."""
    plan = presented_plan(agreement(1, "r1"), agreement(2, "r2"))
    again = domain.add_requirement(plan, domain.NewRequirement(text=" AVOND ", shared_with_family_at=NOW), "prof", NOW)
    assert again is None
    assert [r.requirement_id for r in plan.requirements] == ["r1", "r2"]


def test_the_referrals_requirements_are_set_up_front_and_bind_the_named_professional() -> None:
    texts = ("Niet meer slaan.", "Elke dag naar school.")
    plan = domain.referral_received(None, "case-12345678", StatutoryContext.SUPERVISION_ORDER, received_at=NOW, professional_id="prof", requirements=texts).state
    assert [(r.requirement_id, r.text, r.from_referral, r.set_by) for r in plan.requirements] == [
        ("r1", texts[0], True, "prof"), ("r2", texts[1], True, "prof"),
    ]  # fmt: skip
    assert plan.professional_id == "prof"
    again = domain.referral_received(plan, plan.case_id, StatutoryContext.SUPERVISION_ORDER, received_at=NOW, professional_id="prof", requirements=texts).state
    assert again.requirements == plan.requirements
    with pytest.raises(Forbidden, match="another professional"):
        domain.add_requirement(plan, domain.NewRequirement(text="Nog een.", shared_with_family_at=NOW), "first-comer", NOW)


def test_no_requirements_and_no_professional_without_a_statutory_context() -> None:
    for context in (StatutoryContext.NONE, StatutoryContext.VOLUNTARY_HELP):
        plan = domain.referral_received(None, "case-12345678", context, received_at=NOW, professional_id="prof", requirements=["x"]).state
        assert (plan.statutory, plan.professional_id, plan.requirements) == (False, None, [])
        with pytest.raises(domain.RuleViolation, match="statutory context allows"):
            domain.add_requirement(plan, domain.NewRequirement(text="x", shared_with_family_at=NOW), "prof", NOW)
        with pytest.raises(domain.RuleViolation):
            domain.assign_professional(plan, "prof", domain.ReassignmentReason.NOT_NAMED_IN_REFERRAL, "ops-1", NOW)


def test_nobody_claims_a_case_whose_referral_named_no_professional_until_operations_assigns_one() -> None:
    plan = domain.referral_received(None, "case-12345678", StatutoryContext.OUT_OF_HOME_PLACEMENT, received_at=NOW).state
    with pytest.raises(Forbidden, match="no responsible professional"):
        domain.add_requirement(plan, domain.NewRequirement(text="x", shared_with_family_at=NOW), "first-comer", NOW)
    assert plan.professional_id is None, "a refused caller claims nothing"
    plan = domain.assign_professional(plan, "prof", domain.ReassignmentReason.NOT_NAMED_IN_REFERRAL, "ops-1", NOW).state  # type: ignore[union-attr]
    assert [(c.professional_id, c.previous_professional_id, c.reason, c.by) for c in plan.professional_history] == [
        ("prof", None, domain.ReassignmentReason.NOT_NAMED_IN_REFERRAL, "ops-1")
    ]
    assert domain.assign_professional(plan, "prof", domain.ReassignmentReason.CASELOAD_TRANSFER, "ops-1", NOW) is None
    assert domain.add_requirement(plan, domain.NewRequirement(text="x", shared_with_family_at=NOW), "prof", NOW) is not None
    late = domain.referral_received(plan, plan.case_id, StatutoryContext.OUT_OF_HOME_PLACEMENT, received_at=NOW, professional_id="other").state
    assert late.professional_id == "prof", "a late ReferralReceived does not undo operations' assignment"
