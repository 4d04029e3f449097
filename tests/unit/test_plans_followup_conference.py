"""Plans' rules for a follow-up conference: a new plan from meeting 1 of conference 2,
reviewed against the same bottom-line requirements, apart from the first conference's."""

from datetime import UTC, date, datetime

from services.plans import domain
from shared.contract.events import PlanPresented, PlanRevisionRequested
from shared.contract.vocabulary import StatutoryContext

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
CASE = "case-12345678"


def agreement(n: int, *answers: str) -> domain.Agreement:
    return domain.Agreement(agreement_id=f"a{n}", what="iets", who="friend", by_when=date(2027, 1, 1), kind="network_support", answers_requirements=list(answers))


def accepted_first_conference() -> domain.CasePlan:
    plan = domain.referral_received(None, CASE, StatutoryContext.SUPERVISION_ORDER, received_at=NOW, professional_id="prof").state
    plan = domain.conference_scheduled(plan, CASE, 1, date(2026, 12, 1)).state  # type: ignore[union-attr]
    for text in ("school", "avond"):
        plan = domain.add_requirement(plan, domain.NewRequirement(text=text, shared_with_family_at=NOW), "prof", NOW).state  # type: ignore[union-attr]
    plan = domain.conference_held(plan, CASE, 1, date(2026, 12, 1)).state  # type: ignore[union-attr]
    plan = domain.record_plan(plan, domain.PlanDraft(central_question="?", agreements=[agreement(1, "r1", "r2")])).state
    plan = domain.present(plan, NOW).state
    return domain.review(plan, "prof", None, NOW).state


def test_a_follow_up_conference_takes_a_new_plan_reviewed_against_the_same_requirements() -> None:
    plan = accepted_first_conference()
    plan = domain.conference_scheduled(plan, CASE, 1, date(2027, 4, 1), conference=2).state  # type: ignore[union-attr]
    assert [(m.conference_number, m.number, m.status) for m in plan.meetings] == [
        (1, 1, domain.MeetingStatus.ACCEPTED), (2, 1, domain.MeetingStatus.PLANNED),
    ], "meeting 1 of conference 2 is a meeting of its own, not the first conference's"  # fmt: skip
    plan = domain.conference_held(plan, CASE, 1, date(2027, 4, 1), conference=2).state  # type: ignore[union-attr]
    plan = domain.record_plan(plan, domain.PlanDraft(central_question="en nu?", agreements=[agreement(1, "r1")])).state
    change = domain.present(plan, NOW)
    [presented] = change.events
    assert isinstance(presented, PlanPresented) and (presented.conference_number, presented.meeting_number) == (2, 1)
    [revision] = domain.review(change.state, "prof", None, NOW).events
    assert isinstance(revision, PlanRevisionRequested) and (revision.conference_number, revision.unmet_requirement_ids) == (2, ["r2"])
    assert plan.meeting(1, 1) is not None and plan.meeting(1, 1).plan.central_question == "?"  # type: ignore[union-attr]


def test_a_follow_up_conference_cancelled_before_plans_saw_it_scheduled_opens_cancelled() -> None:
    plan = accepted_first_conference()
    plan = domain.conference_cancelled(plan, CASE, 1, conference=2).state
    assert plan.cancelled_meetings == [] and plan.cancelled_followup_meetings == [(2, 1)]
    plan = domain.conference_scheduled(plan, CASE, 1, date(2027, 4, 1), conference=2).state  # type: ignore[union-attr]
    assert plan.meeting(2, 1).status is domain.MeetingStatus.CANCELLED  # type: ignore[union-attr]
    assert plan.meeting(1, 1).status is domain.MeetingStatus.ACCEPTED  # type: ignore[union-attr]

