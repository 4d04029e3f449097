"""The three-month check, outcomes, and what funders see. Pure rules, no I/O.

A case's follow-up is a durable timer: due a configurable interval after the plan was
accepted, fired exactly once (the store's compare-and-set arbitrates between replicas;
`fire` decides nothing twice). Funders see counts per funder, province and period (the
quarter the case was referred in): each counted event leaves its own counts in the case's
follow-up, under the event's id (`count_*`), so that an event applied again, however late,
counts once; a report adds up the counts of every case.

A check may ask for a new conference (`new_conference_requested`): scheduling opens a
follow-up conference on the same case (conference 2); its accepted plan starts a new round
here: its own due date, its own check, its own OutcomeRecorded (conference_number 2). The
report counts follow-up conferences apart from first conferences (and a second meeting of
one conference is neither: it is counted under the plans made in two meetings).

Service standards (shared.standards): each counted event leaves the days it measured
(`standard_days`), and the report compares them with the funder's targets as they are set
when the report is made.
"""

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from statistics import fmean
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field

from shared.contract.events import (
    AgreementProgress,
    Event,
    FirstContactMade,
    FollowUpCompleted,
    FollowUpDue,
    OutcomeRecorded,
    ReferralReceived,
)
from shared.contract.vocabulary import (
    ChildOutcome,
    ConcernCategory,
    ExecutionStatus,
    Ratings,
    ReferrerType,
    Region,
    Subject,
)
from shared.domain import Change
from shared.errors import NotFound, RuleViolation
from shared.standards import Standard, Targets
from shared.pseudonym import Pseudonyms

DEFAULT_INTERVAL_DAYS = 90
CHECK_COUNTED = "the-check"  # the key of the check's own counts in FollowUp.counted
LATE_AFTER_DAYS = 14
NON_PROFESSIONAL = frozenset({ReferrerType.FAMILY_MEMBER, ReferrerType.SELF})

# DOMAIN.md: the published reference figures a funder compares with.
REFERENCE = {
    "share_within_60_days": 0.65,
    "share_plan_one_meeting": 0.94,
    "share_plan_two_meetings": 0.04,
    "share_no_plan": 0.02,
    "share_fully_carried_out": 0.20,
    "share_in_progress": 0.72,
    "share_not_carried_out": 0.08,
    "rating_children": 8.2,
    "rating_family": 7.8,
    "rating_professionals": 7.6,
    "average_participants": 13,
    "share_non_professional_referrers": 0.09,
}


class Interval(BaseModel):
    """Days from plan acceptance to the check, for a funder or a funder's province."""

    days: int = Field(ge=7, le=365)


def period_of(moment: datetime) -> str:
    return f"{moment.year}-Q{(moment.month - 1) // 3 + 1}"


# --- one case's follow-up ---------------------------------------------------------------------


class Stage(StrEnum):
    OPEN = "open"  # referred, plan not accepted yet
    SCHEDULED = "scheduled"  # the check has a due date
    DUE = "due"  # FollowUpDue fired, waiting for the coordinator's check
    COMPLETED = "completed"
    CLOSED = "closed"  # withdrawn or no plan: nothing to follow up


class Facts(BaseModel):
    """What the report and the funder need, kept from ReferralReceived."""

    funder_id: str
    province: str
    municipality: str | None
    referrer_type: ReferrerType
    concern_categories: list[ConcernCategory]
    received_at: AwareDatetime
    subject: Subject = Subject.CHILD

    @computed_field  # type: ignore[prop-decorator]
    @property
    def period(self) -> str:
        """The quarter of the referral (stored, so that reports can ask for it)."""
        return period_of(self.received_at)


Score = Annotated[int, Field(ge=1, le=10)]


class Check(BaseModel):
    """The coordinator's three-month check."""

    model_config = ConfigDict(extra="forbid")

    execution_status: ExecutionStatus
    agreements: list[AgreementProgress] = []
    ratings_by_children: list[Score] = Field(default=[], max_length=20)
    ratings_by_family: list[Score] = Field(default=[], max_length=50)
    ratings_by_professionals: list[Score] = Field(default=[], max_length=20)
    child_outcomes: list[ChildOutcome] = Field(default=[], max_length=20)
    new_conference_requested: bool = False

    @property
    def ratings(self) -> Ratings:
        def average(scores: list[int]) -> float | None:
            return round(fmean(scores), 2) if scores else None

        return Ratings(
            children=average(self.ratings_by_children),
            family=average(self.ratings_by_family),
            professionals=average(self.ratings_by_professionals),
        )


class FollowUp(BaseModel):
    case_id: str
    facts: Facts
    stage: Stage = Stage.OPEN
    coordinator_id: str | None = None
    conference_number: int = Field(default=1, description="the conference whose check this is (2 or more: a follow-up conference)")
    meetings: int = Field(default=0, description="meetings of that conference")
    plan_accepted_at: AwareDatetime | None = None
    due_at: AwareDatetime | None = None
    generation: int = 0  # bumped when the date moves: each generation fires once
    fired_generation: int | None = None
    check: Check | None = Field(default=None, description="the check as recorded, so that an identical repeat is answered")
    counted: dict[str, "ReportSlice"] = Field(default={}, description="what this case adds to the funder report, by the event counted")
    personal_data_erased_at: AwareDatetime | None = None


def personal_data_erased(current: FollowUp | None, at: datetime) -> Change[FollowUp] | None:
    """Referral erased the case's personal data: the check as the coordinator sent it (the
    ratings, the children's outcomes) goes; what the case adds to the funder report
    (`counted`: codes and counts) stays, so the figures do not change. Once only."""
    if current is None or current.personal_data_erased_at is not None:
        return None
    return Change(current.model_copy(update={"check": None, "personal_data_erased_at": at}))


def facts_of(event: ReferralReceived) -> Facts:
    return Facts(
        funder_id=event.funder_id, province=event.region.province.value, municipality=event.region.municipality,
        referrer_type=event.referrer_type, concern_categories=event.concern_categories, received_at=event.received_at,
        subject=event.subject,
    )  # fmt: skip


def referral_received(current: FollowUp | None, event: ReferralReceived, event_id: str) -> Change[FollowUp] | None:
    if current is not None:
        return None
    facts = facts_of(event)
    return Change(FollowUp(case_id=event.case_id, facts=facts, counted={event_id: count_referral(facts)}))


def coordinator_assigned(current: FollowUp | None, coordinator_id: str) -> Change[FollowUp] | None:
    if current is None or current.coordinator_id == coordinator_id:
        return None
    return Change(current.model_copy(update={"coordinator_id": coordinator_id}))


def conference_held(
    current: FollowUp, meeting_number: int, days: int, participants: int, event_id: str, conference: int = 1
) -> Change[FollowUp] | None:
    updated = current
    if conference == current.conference_number:
        updated = current.model_copy(update={"meetings": max(current.meetings, meeting_number)})
    return _counting(current, updated, [], event_id, count_conference(current.facts, meeting_number, days, participants, conference))


def first_contact(current: FollowUp, event: FirstContactMade, event_id: str) -> Change[FollowUp] | None:
    """The first-contact standard, measured by scheduling, counts for the report."""
    return _counting(current, current, [], event_id, count_first_contact(current.facts, event.days_since_assignment))


def plan_accepted(
    current: FollowUp, accepted_at: datetime, meeting_number: int, interval: timedelta, event_id: str, conference: int = 1
) -> Change[FollowUp] | None:
    """The check gets its date (unless the case closed meanwhile); the plan counts either way.
    A follow-up conference's plan (a later `conference`, after a check that asked for it)
    starts the next round: its own check, due `interval` after this acceptance."""
    updated = current
    schedule = {
        "stage": Stage.SCHEDULED, "plan_accepted_at": accepted_at, "due_at": (accepted_at + interval).astimezone(UTC),
        "generation": current.generation + 1,
    }  # fmt: skip
    if conference == current.conference_number and current.stage is Stage.OPEN:
        updated = current.model_copy(update={**schedule, "meetings": max(current.meetings, meeting_number)})
    elif conference > current.conference_number and current.stage is Stage.COMPLETED and current.check is not None:
        if current.check.new_conference_requested:
            updated = current.model_copy(update={**schedule, "conference_number": conference, "meetings": meeting_number, "check": None})
    return _counting(current, updated, [], event_id, count_plan(current.facts, meeting_number, conference))


def no_plan_reached(current: FollowUp, event_id: str, conference: int = 1) -> Change[FollowUp] | None:
    change = closed(current) if conference == current.conference_number else None
    return _counting(current, change.state if change else current, [], event_id, count_no_plan(current.facts, conference))


def closed(current: FollowUp | None) -> Change[FollowUp] | None:
    if current is None or current.stage in (Stage.COMPLETED, Stage.CLOSED):
        return None
    return Change(current.model_copy(update={"stage": Stage.CLOSED}))


def _counting(
    current: FollowUp, updated: FollowUp, events: list[Event], key: str, contribution: "ReportSlice | None"
) -> Change[FollowUp] | None:
    """`updated` with `contribution` counted under `key`; None if neither changes anything."""
    if contribution is not None:
        updated = updated.model_copy(update={"counted": {**updated.counted, key: contribution}})
    return None if updated == current and not events else Change(updated, events)


def move(current: FollowUp | None, due_at: datetime) -> Change[FollowUp]:
    if current is None:
        raise NotFound("no such case")
    if current.stage is not Stage.SCHEDULED:
        raise RuleViolation(f"the follow-up is {current.stage}: only a scheduled check can move")
    return Change(current.model_copy(update={"due_at": due_at.astimezone(UTC), "generation": current.generation + 1}))


def fire(current: FollowUp | None, now: datetime) -> Change[FollowUp] | None:
    """FollowUpDue, once per generation, when the due time has come."""
    if current is None or current.stage is not Stage.SCHEDULED or current.due_at is None or current.due_at > now:
        return None
    if current.fired_generation == current.generation:
        return None
    assert current.plan_accepted_at is not None
    event = FollowUpDue(
        case_id=current.case_id, conference_number=current.conference_number, due_at=current.due_at, plan_accepted_at=current.plan_accepted_at
    )
    return Change(current.model_copy(update={"stage": Stage.DUE, "fired_generation": current.generation}), [event])


def late(current: FollowUp, now: datetime) -> bool:
    return current.stage is Stage.DUE and current.due_at is not None and now - current.due_at > timedelta(days=LATE_AFTER_DAYS)


def complete(current: FollowUp | None, check: Check, now: datetime, pseudonyms: Pseudonyms) -> Change[FollowUp] | None:
    """Record the check once it is due. The same check again changes nothing: a coordinator
    whose answer was lost (a 503 after the write took effect) may simply send it again.
    The funder learns the outcome under its own pseudonym of the case, never the case id."""
    if current is None:
        raise NotFound("no such case")
    if current.stage is Stage.COMPLETED and current.check == check:
        return None
    if current.stage is not Stage.DUE:
        raise RuleViolation(f"the follow-up is {current.stage}: a check is recorded once it is due")
    completed = FollowUpCompleted(
        case_id=current.case_id, conference_number=current.conference_number, completed_at=now, execution_status=check.execution_status, agreements=check.agreements,
        ratings=check.ratings, child_outcomes=check.child_outcomes, new_conference_requested=check.new_conference_requested,
    )  # fmt: skip
    facts = current.facts
    outcome = OutcomeRecorded(
        pseudonym=pseudonyms.of(current.case_id, facts.funder_id), funder_id=facts.funder_id,
        region=Region(province=facts.province, municipality=facts.municipality), period=facts.period,
        concern_categories=facts.concern_categories, meeting_count=current.meetings,
        execution_status=check.execution_status, ratings=check.ratings, child_outcomes=check.child_outcomes,
        conference_number=current.conference_number, subject=facts.subject,
    )  # fmt: skip
    updated = current.model_copy(update={"stage": Stage.COMPLETED, "check": check})
    assert current.due_at is not None
    days_after_due = max(0, (now.astimezone(UTC).date() - current.due_at.date()).days)
    key = CHECK_COUNTED if current.conference_number == 1 else f"{CHECK_COUNTED}-{current.conference_number}"
    return _counting(current, updated, [completed, outcome], key, count_followup(facts, completed, days_after_due))


# --- the funder report ------------------------------------------------------------------------


class ReportSlice(BaseModel):
    """Counters of one funder, province and period. Each counted event contributes one
    (`count_*`: the counts of that event alone); a report adds up the contributions."""

    funder_id: str
    province: str
    period: str
    referrals: int = 0
    from_non_professionals: int = 0
    concerns: dict[str, int] = {}
    subjects: dict[str, int] = {}
    first_conferences: int = 0
    within_60_days: int = 0
    followup_conferences_requested: int = 0
    followup_conferences: int = 0
    followup_conference_plans: int = 0
    followup_conferences_without_plan: int = 0
    standard_days: dict[str, dict[str, int]] = Field(default={}, description="per standard: how many cases took how many days")
    participants: int = 0
    plan_one_meeting: int = 0
    plan_two_meetings: int = 0
    no_plan: int = 0
    followups: int = 0
    execution: dict[str, int] = {}
    rating_sums: dict[str, float] = {}
    rating_counts: dict[str, int] = {}
    outcomes: dict[str, int] = {}


def _contribution(facts: Facts, **counts: object) -> ReportSlice:
    return ReportSlice(funder_id=facts.funder_id, province=facts.province, period=facts.period, **counts)  # type: ignore[arg-type]


def count_referral(facts: Facts) -> ReportSlice:
    return _contribution(
        facts, referrals=1, from_non_professionals=int(facts.referrer_type in NON_PROFESSIONAL),
        concerns=dict(Counter(concern.value for concern in facts.concern_categories)), subjects={facts.subject.value: 1},
    )  # fmt: skip


def _measured(standard: Standard, days: int) -> dict[str, dict[str, int]]:
    return {standard.value: {str(days): 1}}


def count_conference(facts: Facts, meeting_number: int, days: int, participants: int, conference: int = 1) -> ReportSlice | None:
    if meeting_number != 1:
        return None  # a second meeting is not a new conference
    if conference > 1:
        return _contribution(facts, followup_conferences=1)  # a follow-up conference: not a first one, no 60 days
    return _contribution(
        facts, first_conferences=1, within_60_days=int(days <= 60), participants=participants,
        standard_days=_measured(Standard.CONFERENCE, days),
    )  # fmt: skip


def count_first_contact(facts: Facts, days: int) -> ReportSlice:
    return _contribution(facts, standard_days=_measured(Standard.FIRST_CONTACT, days))


def count_plan(facts: Facts, meeting_number: int, conference: int = 1) -> ReportSlice:
    if conference > 1:
        return _contribution(facts, followup_conference_plans=1)
    return _contribution(facts, **{"plan_one_meeting" if meeting_number == 1 else "plan_two_meetings": 1})


def count_no_plan(facts: Facts, conference: int = 1) -> ReportSlice:
    return _contribution(facts, **{"no_plan" if conference == 1 else "followup_conferences_without_plan": 1})


def count_followup(facts: Facts, completed: FollowUpCompleted, days_after_due: int | None = None) -> ReportSlice:
    rated = {group: value for group, value in completed.ratings.model_dump().items() if value is not None}
    return _contribution(
        facts, followups=1, execution={completed.execution_status.value: 1},
        rating_sums=rated, rating_counts=dict.fromkeys(rated, 1),
        outcomes=dict(Counter(outcome.value for outcome in completed.child_outcomes)),
        followup_conferences_requested=int(completed.new_conference_requested),
        standard_days={} if days_after_due is None else _measured(Standard.FOLLOWUP_CHECK, days_after_due),
    )  # fmt: skip


FollowUp.model_rebuild()


def counts_of(followups: list[FollowUp]) -> list[ReportSlice]:
    return [contribution for followup in followups for contribution in followup.counted.values()]


class Report(BaseModel):
    """One or more slices added up, as shares and averages, beside the reference figures."""

    funder_id: str | None
    province: str | None
    period: str | None
    referrals: int
    share_non_professional_referrers: float | None
    share_within_60_days: float | None
    average_participants: float | None
    plans: int
    share_plan_one_meeting: float | None
    share_plan_two_meetings: float | None
    share_no_plan: float | None
    followups: int
    share_fully_carried_out: float | None
    share_in_progress: float | None
    share_not_carried_out: float | None
    rating_children: float | None
    rating_family: float | None
    rating_professionals: float | None
    outcomes: dict[str, int]
    top_concerns: list[tuple[str, int]]
    subjects: dict[str, int] = Field(default={}, description="referrals by whom the conference is about: child, adult, household")
    followup_conferences_requested: int = Field(default=0, description="three-month checks that asked for a new conference")
    followup_conferences: int = Field(default=0, description="follow-up conferences held (not counted among the first conferences)")
    followup_conference_plans: int = Field(default=0, description="plans accepted in follow-up conferences")
    followup_conferences_without_plan: int = 0
    service_standards: list["StandardFigure"] = []
    reference: dict[str, float] = REFERENCE


class StandardFigure(BaseModel):
    """How often one service standard was reached, against each funder's own target."""

    standard: Standard
    target_days: int | None = Field(description="the target; None when the funders in the report have different ones")
    measured: int
    reached: int
    missed: int
    share_reached: float | None


def standard_figures(slices: list[ReportSlice], targets_for: Callable[[str], Targets]) -> list[StandardFigure]:
    figures = []
    for standard in Standard:
        reached = missed = 0
        targets = set()
        for s in slices:
            target = targets_for(s.funder_id)
            targets.add(target.days(standard))
            for days, count in s.standard_days.get(standard.value, {}).items():
                if target.reached(standard, int(days)):
                    reached += count
                else:
                    missed += count
        target_days = targets.pop() if len(targets) == 1 else None
        figures.append(
            StandardFigure(
                standard=standard, target_days=target_days, measured=reached + missed, reached=reached, missed=missed,
                share_reached=_share(reached, reached + missed),
            )
        )  # fmt: skip
    return figures


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 3) if whole else None


def report(
    slices: list[ReportSlice], funder_id: str | None, province: str | None, period: str | None,
    targets_for: Callable[[str], Targets] = lambda _: Targets(),
) -> Report:  # fmt: skip
    def total(name: str) -> int:
        return sum(getattr(s, name) for s in slices)

    def merged(name: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for s in slices:
            for key, value in getattr(s, name).items():
                out[key] = out.get(key, 0) + value
        return out

    execution, sums, counts, concerns = merged("execution"), merged("rating_sums"), merged("rating_counts"), merged("concerns")
    plans = total("plan_one_meeting") + total("plan_two_meetings") + total("no_plan")
    followups = total("followups")

    def rating(group: str) -> float | None:
        return round(sums[group] / counts[group], 2) if counts.get(group) else None

    return Report(
        funder_id=funder_id, province=province, period=period, referrals=total("referrals"),
        share_non_professional_referrers=_share(total("from_non_professionals"), total("referrals")),
        share_within_60_days=_share(total("within_60_days"), total("first_conferences")),
        average_participants=round(total("participants") / total("first_conferences"), 1) if total("first_conferences") else None,
        plans=plans,
        share_plan_one_meeting=_share(total("plan_one_meeting"), plans),
        share_plan_two_meetings=_share(total("plan_two_meetings"), plans),
        share_no_plan=_share(total("no_plan"), plans),
        followups=followups,
        share_fully_carried_out=_share(execution.get(ExecutionStatus.FULLY_CARRIED_OUT.value, 0), followups),
        share_in_progress=_share(
            execution.get(ExecutionStatus.IN_PROGRESS_FULLY.value, 0) + execution.get(ExecutionStatus.IN_PROGRESS_PARTLY.value, 0), followups
        ),
        share_not_carried_out=_share(execution.get(ExecutionStatus.NOT_CARRIED_OUT.value, 0), followups),
        rating_children=rating("children"), rating_family=rating("family"), rating_professionals=rating("professionals"),
        outcomes={key: int(value) for key, value in sorted(merged("outcomes").items())},
        top_concerns=[(key, int(value)) for key, value in sorted(concerns.items(), key=lambda kv: (-kv[1], kv[0]))[:3]],
        subjects={key: int(value) for key, value in sorted(merged("subjects").items())},
        followup_conferences_requested=total("followup_conferences_requested"), followup_conferences=total("followup_conferences"),
        followup_conference_plans=total("followup_conference_plans"),
        followup_conferences_without_plan=total("followup_conferences_without_plan"),
        service_standards=standard_figures(slices, targets_for),
    )  # fmt: skip


Report.model_rebuild()
