"""The follow-up service's pure rules: the timer fires once per due date, the check is
recorded once it is due, outcomes carry no personal data, and the report adds up."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.followup import domain
from services.followup.domain import Check, FollowUp, RuleViolation, Stage
from shared.contract.events import FollowUpCompleted, FollowUpDue, OutcomeRecorded
from shared.contract.vocabulary import ChildOutcome, ConcernCategory, ExecutionStatus, ReferrerType
from shared.domain import Change
from shared.errors import NotFound
from shared.privacy import is_personal
from shared.pseudonym import Pseudonyms
from tests.support.samples import referral_received

PSEUDONYMS = Pseudonyms(b"k" * 32)

ACCEPTED = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
NINETY_DAYS = timedelta(days=90)


def referred(**update: object) -> FollowUp:
    event = referral_received().model_copy(update={"received_at": ACCEPTED - timedelta(days=40), **update})
    change = domain.referral_received(None, event, "referral-event")
    assert change is not None
    return change.state


def scheduled() -> FollowUp:
    change = domain.plan_accepted(referred(), ACCEPTED, 1, NINETY_DAYS, "plan-event")
    assert change is not None
    return change.state


def due() -> FollowUp:
    change = domain.fire(scheduled(), ACCEPTED + NINETY_DAYS)
    assert change is not None
    return change.state


def test_plan_accepted_schedules_the_check_after_the_interval() -> None:
    followup = scheduled()
    assert followup.stage is Stage.SCHEDULED
    assert followup.due_at == ACCEPTED + NINETY_DAYS
    assert domain.plan_accepted(followup, ACCEPTED, 1, NINETY_DAYS, "plan-event") is None  # the same acceptance again changes nothing


def test_nothing_fires_before_the_due_time() -> None:
    assert domain.fire(scheduled(), ACCEPTED + NINETY_DAYS - timedelta(seconds=1)) is None


@given(st.integers(min_value=0, max_value=10_000))
def test_the_due_check_fires_exactly_once_however_late_the_sweep(minutes_late: int) -> None:
    now = ACCEPTED + NINETY_DAYS + timedelta(minutes=minutes_late)
    first = domain.fire(scheduled(), now)
    assert first is not None
    assert [type(event) for event in first.events] == [FollowUpDue]
    assert first.events[0].due_at == ACCEPTED + NINETY_DAYS
    # a second replica deciding on the new state (after losing the insert race) fires nothing
    assert domain.fire(first.state, now) is None


def test_moving_the_date_rearms_the_timer_for_the_new_date_only() -> None:
    later = ACCEPTED + timedelta(days=120)
    moved = domain.move(scheduled(), later).state
    assert domain.fire(moved, ACCEPTED + NINETY_DAYS) is None
    fired = domain.fire(moved, later)
    assert fired is not None and fired.events[0].due_at == later


def test_only_a_scheduled_check_can_move() -> None:
    with pytest.raises(RuleViolation):
        domain.move(due(), ACCEPTED + timedelta(days=120))
    with pytest.raises(NotFound):
        domain.move(None, ACCEPTED)


def test_a_withdrawn_case_is_never_followed_up() -> None:
    closed = domain.closed(referred())
    assert closed is not None
    accepted = domain.plan_accepted(closed.state, ACCEPTED, 1, NINETY_DAYS, "plan-event")
    assert accepted is not None and list(accepted.events) == []
    assert (accepted.state.stage, accepted.state.due_at) == (Stage.CLOSED, None), "no check for a withdrawn case"
    assert list(accepted.state.counted) == ["referral-event", "plan-event"], "the plan still counts"


def test_every_event_counts_once_under_its_own_id() -> None:
    followup = referred()
    held = domain.conference_held(followup, 1, 30, 12, "held-event")
    assert held is not None and held.state.counted["held-event"].first_conferences == 1
    assert domain.conference_held(held.state, 1, 30, 12, "held-event") is None, "applied again: nothing new"
    accepted = domain.plan_accepted(held.state, ACCEPTED, 1, NINETY_DAYS, "plan-event")
    assert accepted is not None
    report = domain.report(domain.counts_of([accepted.state]), None, None, None)
    assert (report.referrals, report.plans, report.average_participants) == (1, 1, 12)


def test_late_means_overdue_by_more_than_fourteen_days() -> None:
    followup = due()
    assert not domain.late(followup, ACCEPTED + NINETY_DAYS + timedelta(days=14))
    assert domain.late(followup, ACCEPTED + NINETY_DAYS + timedelta(days=14, seconds=1))


def check(**update: object) -> Check:
    fields: dict[str, object] = {
        "execution_status": ExecutionStatus.IN_PROGRESS_PARTLY,
        "ratings_by_children": [8, 9],
        "ratings_by_family": [7, 8, 9],
        "ratings_by_professionals": [6],
        "child_outcomes": [ChildOutcome.PLACEMENT_PREVENTED, ChildOutcome.NONE],
    }
    return Check(**{**fields, **update})


def recorded(followup: FollowUp, the_check: Check, at: datetime = ACCEPTED + NINETY_DAYS) -> Change[FollowUp]:
    change = domain.complete(followup, the_check, at, PSEUDONYMS)
    assert change is not None
    return change


def test_the_check_is_recorded_only_once_it_is_due() -> None:
    with pytest.raises(RuleViolation):
        domain.complete(scheduled(), check(), ACCEPTED, PSEUDONYMS)
    completed = recorded(due(), check())
    assert completed.state.stage is Stage.COMPLETED
    assert completed.state.check == check()
    # the same check again (its answer was lost) changes nothing; a different one is refused
    assert domain.complete(completed.state, check(), ACCEPTED + NINETY_DAYS + timedelta(minutes=1), PSEUDONYMS) is None
    with pytest.raises(RuleViolation):
        domain.complete(completed.state, check(execution_status=ExecutionStatus.NOT_CARRIED_OUT), ACCEPTED + NINETY_DAYS, PSEUDONYMS)


def test_completion_emits_the_check_and_the_funders_outcome() -> None:
    followup = due()
    done, outcome = recorded(followup, check()).events
    assert isinstance(done, FollowUpCompleted) and isinstance(outcome, OutcomeRecorded)
    assert (done.ratings.children, done.ratings.family, done.ratings.professionals) == (8.5, 8.0, 6.0)
    assert outcome.funder_id == followup.facts.funder_id
    assert outcome.period == "2026-Q3"  # the quarter the case was referred in (40 days before acceptance)
    assert outcome.meeting_count == 1
    # the funder's own pseudonym of the case, never the case id
    assert outcome.pseudonym == PSEUDONYMS.of(followup.case_id, followup.facts.funder_id) != followup.case_id
    assert followup.case_id not in outcome.model_dump_json()


def test_the_outcome_carries_no_personal_field() -> None:
    _, outcome = recorded(due(), check()).events

    def names(value: object) -> list[str]:
        if isinstance(value, dict):
            return [*value, *(name for item in value.values() for name in names(item))]
        if isinstance(value, list):
            return [name for item in value for name in names(item)]
        return []

    assert not [name for name in names(outcome.model_dump(mode="json")) if is_personal(name)]


@pytest.mark.parametrize("field", ["ratings_by_children", "ratings_by_family", "ratings_by_professionals"])
@pytest.mark.parametrize("score", [0, 11])
def test_ratings_are_on_a_scale_of_one_to_ten(field: str, score: int) -> None:
    with pytest.raises(ValueError):
        check(**{field: [score]})


def test_period_is_the_quarter() -> None:
    assert [domain.period_of(datetime(2026, month, 1, tzinfo=UTC)) for month in (1, 3, 4, 9, 10, 12)] == [
        "2026-Q1", "2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4", "2026-Q4",
    ]  # fmt: skip


def test_the_report_adds_up_to_a_hand_computed_expectation() -> None:
    bureau = referred().facts
    family = referred(referrer_type=ReferrerType.FAMILY_MEMBER, concern_categories=[ConcernCategory.INCOME_DEBT]).facts
    counted = [domain.count_referral(facts) for facts in (bureau, bureau, bureau, family)]
    counted += [domain.count_conference(bureau, 1, 30, 12), domain.count_conference(bureau, 1, 61, 14), domain.count_conference(family, 1, 60, 10)]
    assert domain.count_conference(bureau, 2, 90, 99) is None  # a second meeting is not a new conference
    counted += [domain.count_plan(bureau, 1), domain.count_plan(bureau, 2), domain.count_no_plan(family)]
    for status, children in ((ExecutionStatus.FULLY_CARRIED_OUT, [9]), (ExecutionStatus.NOT_CARRIED_OUT, [])):
        completed = recorded(due(), check(execution_status=status, ratings_by_children=children), ACCEPTED).events[0]
        counted.append(domain.count_followup(bureau, completed))

    result = domain.report([c for c in counted if c is not None], bureau.funder_id, None, None)
    assert result.referrals == 4
    assert result.share_non_professional_referrers == 0.25
    assert result.share_within_60_days == round(2 / 3, 3)
    assert result.average_participants == 12.0
    assert (result.plans, result.share_plan_one_meeting, result.share_plan_two_meetings, result.share_no_plan) == (
        3, round(1 / 3, 3), round(1 / 3, 3), round(1 / 3, 3),
    )  # fmt: skip
    assert (result.followups, result.share_fully_carried_out, result.share_not_carried_out, result.share_in_progress) == (2, 0.5, 0.5, 0.0)
    assert (result.rating_children, result.rating_family, result.rating_professionals) == (9.0, 8.0, 6.0)
    assert result.outcomes == {"none": 2, "placement_prevented": 2}
    assert result.top_concerns == [("housing", 3), ("parenting", 3), ("income_debt", 1)]
    assert result.reference["share_plan_one_meeting"] == 0.94


def test_an_empty_report_has_no_figures_rather_than_zero_division() -> None:
    result = domain.report([], "prov-nh", None, None)
    assert result.referrals == 0 and result.share_within_60_days is None and result.rating_children is None


def test_two_funders_pseudonyms_of_one_case_differ_and_each_keeps_its_own() -> None:
    """Issue 23: a funder relates its own updates of a case (the same pseudonym every time),
    two funders cannot link theirs (different pseudonyms), and neither sees the case id."""
    from services.followup import partner

    followup = due()
    for_b = followup.model_copy(update={"facts": followup.facts.model_copy(update={"funder_id": "gm-b"})})
    outcome_a = recorded(followup, check()).events[1]
    outcome_b = recorded(for_b, check()).events[1]
    assert isinstance(outcome_a, OutcomeRecorded) and isinstance(outcome_b, OutcomeRecorded)
    assert outcome_a.pseudonym != outcome_b.pseudonym
    assert followup.case_id not in outcome_a.model_dump_json() + outcome_b.model_dump_json()
    # A second event of the case for the same funder: an outcome kept as v1, replayed now.
    legacy = {
        "channel": "partner", "routing_key": "x",
        "envelope": {
            "id": "e-1", "source": "kring/followup", "type": partner.LEGACY_TYPE, "time": "2026-01-05T09:00:00+00:00",
            "subject": followup.case_id, "specversion": "1.0", "correlation_id": followup.case_id, "causation_id": "c-1",
            "data": {**outcome_a.model_dump(mode="json", exclude={"pseudonym"}), "case_id": followup.case_id},
        },
    }  # fmt: skip
    replayed = partner.as_published_now(legacy, PSEUDONYMS)
    assert replayed["envelope"]["data"]["pseudonym"] == outcome_a.pseudonym == replayed["envelope"]["subject"]
    assert replayed["envelope"]["id"] == "e-1" and replayed["envelope"]["causation_id"] is None
    assert followup.case_id not in str(replayed)
