"""The family's plan, the professional's bottom-line requirements, and acceptance. Pure rules.

The plan is the family's: written in private family time, recorded by the coordinator,
readable by the family. Only a case with a supervision order or out-of-home placement has
bottom-line requirements and a responsible professional: the one the referrer named
(ReferralReceived), or the one operations assigns instead, with a reason kept in the
case's history. Nobody claims a case by acting first. The requirements come with the
referral and from that professional before the conference (shared with the family
beforehand); the professional accepts the plan only when every requirement is answered by
an agreement, or with a recorded justification. Events carry counts and codes; the plan's
words stay here.

A meeting is known by its conference and its number in that conference: a follow-up
conference (conference 2, opened by a three-month check) takes a new plan from meeting 1,
reviewed against the same requirements; a second meeting (meeting 2) finishes the SAME
conference's plan.
"""

from collections.abc import Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from shared.contract.events import (
    AgreementCounts,
    NoPlanReached,
    PlanAccepted,
    PlanPresented,
    PlanRevisionRequested,
    SecondMeetingNeeded,
)
from shared.contract.vocabulary import AgreementKind, Identifier, StatutoryContext
from shared.domain import Change, Strict
from shared.errors import Forbidden, InvalidInput, NotFound, RuleViolation

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
STATUTORY = frozenset({StatutoryContext.SUPERVISION_ORDER, StatutoryContext.OUT_OF_HOME_PLACEMENT})


class Who(StrEnum):
    """Who carries out an agreement: a role in the network, or a professional service."""

    PARENT = "parent"
    CHILD = "child"
    GRANDPARENT = "grandparent"
    OTHER_RELATIVE = "other_relative"
    FRIEND = "friend"
    NEIGHBOUR = "neighbour"
    TEACHER = "teacher"
    PROFESSIONAL_SERVICE = "professional_service"


class NewRequirement(Strict):
    text: Annotated[Text, StringConstraints(max_length=1000)]
    shared_with_family_at: AwareDatetime = Field(description="when the family was told: it must see them beforehand")


class Requirement(BaseModel):
    requirement_id: Identifier
    text: str
    set_by: str
    set_at: AwareDatetime
    shared_with_family_at: AwareDatetime
    from_referral: bool = Field(default=False, description="set up front in the referral (shown to the family on its case from then)")


class ReassignmentReason(StrEnum):
    """Why operations binds a case to another responsible professional: a code, never a story."""

    NOT_NAMED_IN_REFERRAL = "not_named_in_referral"
    CASELOAD_TRANSFER = "caseload_transfer"
    PROFESSIONAL_LEFT = "professional_left"
    PROFESSIONAL_ABSENT = "professional_absent"
    CONFLICT_OF_INTEREST = "conflict_of_interest"
    NAMED_IN_ERROR = "named_in_error"


class ProfessionalChange(BaseModel):
    """One entry of the case's history of its responsible professional (ids and codes only)."""

    professional_id: str
    previous_professional_id: str | None
    reason: ReassignmentReason
    by: str = Field(description="the operations account that made the change")
    at: AwareDatetime


class Agreement(Strict):
    agreement_id: Identifier
    what: Annotated[Text, StringConstraints(max_length=2000)]
    who: Who
    service_category: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]{1,39}$")] | None = Field(
        default=None, description="for professional help: which kind (e.g. debt_counselling)"
    )
    by_when: date
    kind: AgreementKind
    answers_requirements: list[Identifier] = []


class PlanDraft(Strict):
    central_question: Annotated[Text, StringConstraints(max_length=2000)]
    agreements: list[Agreement] = Field(min_length=1, max_length=100)


class MeetingStatus(StrEnum):
    PLANNED = "planned"  # conference scheduled, not held yet
    HELD = "held"
    PRESENTED = "presented"  # waiting for the professional's review
    REVISION_REQUESTED = "revision_requested"
    ACCEPTED = "accepted"
    SECOND_MEETING = "second_meeting"
    NO_PLAN = "no_plan"
    CANCELLED = "cancelled"


class Meeting(BaseModel):
    conference_number: int = Field(default=1, description="1: the first conference; 2 or more: a follow-up conference")
    number: int = Field(description="the meeting of its conference (2: a second meeting)")
    conference_date: date
    status: MeetingStatus = MeetingStatus.PLANNED
    plan: PlanDraft | None = None
    presentations: int = 0
    justification: str | None = None
    reason_category: str | None = None


class CasePlan(BaseModel):
    case_id: str
    statutory: bool = False
    coordinator_id: str | None = None
    professional_id: str | None = Field(default=None, description="the responsible professional: only they set requirements and review")
    professional_history: list[ProfessionalChange] = []
    referral_seen: bool = Field(default=False, description="ReferralReceived has reached plans")
    requirements: list[Requirement] = []
    meetings: list[Meeting] = []
    cancelled_meetings: list[int] = Field(default=[], description="meetings of the first conference cancelled before plans saw them scheduled")
    cancelled_followup_meetings: list[tuple[int, int]] = Field(
        default=[], description="(conference, meeting) of follow-up conferences cancelled before plans saw them scheduled"
    )
    personal_data_erased_at: AwareDatetime | None = Field(default=None, description="the texts are gone; the plan is closed")

    @property
    def current(self) -> Meeting | None:
        return self.meetings[-1] if self.meetings else None

    def meeting(self, conference: int, number: int) -> Meeting | None:
        return next((m for m in self.meetings if (m.conference_number, m.number) == (conference, number)), None)

    def cancelled_before_scheduled(self, conference: int, number: int) -> bool:
        if conference == 1:
            return number in self.cancelled_meetings
        return (conference, number) in self.cancelled_followup_meetings

    def conference_started(self, today: date) -> bool:
        return any(m.status is not MeetingStatus.PLANNED or m.conference_date <= today for m in self.meetings)


def _case(plan: CasePlan | None, case_id: str) -> CasePlan:
    return plan or CasePlan(case_id=case_id)


def _is(meeting: Meeting, conference: int, number: int) -> bool:
    return (meeting.conference_number, meeting.number) == (conference, number)


def _in_order(meetings: list[Meeting]) -> list[Meeting]:
    return sorted(meetings, key=lambda m: (m.conference_number, m.number))


# --- from other services' events -------------------------------------------------------------


def referral_received(
    plan: CasePlan | None, case_id: str, statutory_context: StatutoryContext, *, received_at: datetime,
    professional_id: str | None = None, requirements: Sequence[str] = (),
) -> Change[CasePlan]:  # fmt: skip
    """The case as referred: whether it is statutory, its responsible professional (unless
    operations bound another meanwhile) and the bottom-line requirements set up front. A
    requirement already known (the same text) is not added twice."""
    plan = _case(plan, case_id)
    statutory = statutory_context in STATUTORY
    update: dict[str, object] = {"statutory": statutory, "referral_seen": True}
    if statutory and plan.professional_id is None and professional_id:
        update["professional_id"] = professional_id
    added = list(plan.requirements)
    for text in requirements if statutory else ():
        if not any(existing.text.casefold() == text.casefold() for existing in added):
            added.append(Requirement(
                requirement_id=f"r{len(added) + 1}", text=text, set_by=professional_id or "referral", set_at=received_at,
                shared_with_family_at=received_at, from_referral=True,
            ))  # fmt: skip
    update["requirements"] = added
    return Change(plan.model_copy(update=update))


def coordinator_assigned(plan: CasePlan | None, case_id: str, coordinator_id: str) -> Change[CasePlan]:
    return Change(_case(plan, case_id).model_copy(update={"coordinator_id": coordinator_id}))


def conference_scheduled(plan: CasePlan | None, case_id: str, number: int, day: date, conference: int = 1) -> Change[CasePlan] | None:
    """Opens the plan record of meeting `number` of `conference` (a second meeting links to
    the first). Its cancellation travels on another queue and may have come first: then it
    opens cancelled."""
    plan = _case(plan, case_id)
    if plan.meeting(conference, number) is not None:
        return conference_moved(plan, number, day, conference)
    status = MeetingStatus.CANCELLED if plan.cancelled_before_scheduled(conference, number) else MeetingStatus.PLANNED
    meeting = Meeting(conference_number=conference, number=number, conference_date=day, status=status)
    return Change(plan.model_copy(update={"meetings": _in_order([*plan.meetings, meeting])}))


def conference_moved(plan: CasePlan | None, number: int, day: date, conference: int = 1) -> Change[CasePlan] | None:
    if plan is None:
        return None
    meetings = [
        m.model_copy(update={"conference_date": day}) if _is(m, conference, number) and m.status is MeetingStatus.PLANNED else m
        for m in plan.meetings
    ]
    return Change(plan.model_copy(update={"meetings": meetings}))


def conference_held(plan: CasePlan | None, case_id: str, number: int, day: date, conference: int = 1) -> Change[CasePlan] | None:
    """The conference took place. Its ConferenceScheduled travels on another queue and may
    come later: then the meeting is opened here, already held."""
    plan = _case(plan, case_id)
    if plan.meeting(conference, number) is None:
        meeting = Meeting(conference_number=conference, number=number, conference_date=day, status=MeetingStatus.HELD)
        return Change(plan.model_copy(update={"meetings": _in_order([*plan.meetings, meeting])}))
    meetings = [
        m.model_copy(update={"status": MeetingStatus.HELD, "conference_date": day})
        if _is(m, conference, number) and m.status is MeetingStatus.PLANNED
        else m
        for m in plan.meetings
    ]
    return Change(plan.model_copy(update={"meetings": meetings}))


def conference_cancelled(plan: CasePlan | None, case_id: str, number: int, conference: int = 1) -> Change[CasePlan]:
    """A meeting plans has not seen scheduled (its ConferenceScheduled is late, or it was
    cancelled during preparation, before it had a date) is remembered as cancelled."""
    plan = _case(plan, case_id)
    if plan.meeting(conference, number) is None:
        if conference == 1:
            return Change(plan.model_copy(update={"cancelled_meetings": sorted({*plan.cancelled_meetings, number})}))
        cancelled = sorted({*plan.cancelled_followup_meetings, (conference, number)})
        return Change(plan.model_copy(update={"cancelled_followup_meetings": cancelled}))
    meetings = [
        m.model_copy(update={"status": MeetingStatus.CANCELLED}) if _is(m, conference, number) and m.status is MeetingStatus.PLANNED else m
        for m in plan.meetings
    ]
    return Change(plan.model_copy(update={"meetings": meetings}))


def personal_data_erased(plan: CasePlan | None, at: datetime) -> Change[CasePlan] | None:
    """Referral erased the case's personal data: every text goes (requirements, the central
    question, the agreements, a justification); ids, dates, statuses and codes stay. After
    this nobody changes the plan. Once only."""
    if plan is None or plan.personal_data_erased_at is not None:
        return None
    requirements = [r.model_copy(update={"text": ""}) for r in plan.requirements]
    meetings = [m.model_copy(update={"plan": None, "justification": None}) for m in plan.meetings]
    return Change(plan.model_copy(update={"requirements": requirements, "meetings": meetings, "personal_data_erased_at": at}))


def _not_erased(plan: CasePlan) -> CasePlan:
    if plan.personal_data_erased_at is not None:
        raise RuleViolation("the case's personal data was erased")
    return plan


# --- what people do ---------------------------------------------------------------------------


NOT_STATUTORY = (
    "bottom-line requirements only where the statutory context allows them (a supervision order or an "
    "out-of-home placement); this case has neither"
)


def responsible(plan: CasePlan, professional: str) -> None:
    """Only the case's responsible professional; refuses everyone else (403)."""
    if plan.professional_id is None:
        raise Forbidden("no responsible professional is bound to this case: the referrer names one, or operations assigns one")
    if plan.professional_id != professional:
        raise Forbidden("another professional holds statutory responsibility for this case")


def add_requirement(plan: CasePlan | None, new: NewRequirement, professional: str, now: datetime) -> Change[CasePlan] | None:
    """A requirement already set with the same text is not set twice (None: no change): a
    professional's resend after a lost answer would otherwise add one the plan never
    answers, and the plan could not pass review."""
    if plan is None or not (plan.referral_seen or plan.statutory):
        raise NotFound("the case's referral has not reached plans (yet)")
    _not_erased(plan)
    if not plan.statutory:
        raise RuleViolation(NOT_STATUTORY)
    responsible(plan, professional)
    if any(existing.text.casefold() == new.text.casefold() for existing in plan.requirements):
        return None
    if plan.conference_started(now.date()):
        raise RuleViolation("the conference has started: bottom-line requirements must be set and shared before it")
    if new.shared_with_family_at > now:
        raise RuleViolation("shared_with_family_at is in the future")
    requirement = Requirement(
        requirement_id=f"r{len(plan.requirements) + 1}", text=new.text, set_by=professional, set_at=now,
        shared_with_family_at=new.shared_with_family_at,
    )  # fmt: skip
    return Change(plan.model_copy(update={"requirements": [*plan.requirements, requirement]}))


def assign_professional(plan: CasePlan | None, professional_id: str, reason: ReassignmentReason, by: str, now: datetime) -> Change[CasePlan] | None:
    """Operations binds the case to another responsible professional (or to one where the
    referral named none), for a reason kept in the case's history. The same one again: no change."""
    if plan is None:
        raise NotFound("no such case")
    if not plan.statutory:
        raise RuleViolation("only a case with a supervision order or out-of-home placement has a responsible professional")
    if plan.professional_id == professional_id:
        return None
    entry = ProfessionalChange(professional_id=professional_id, previous_professional_id=plan.professional_id, reason=reason, by=by, at=now)
    return Change(plan.model_copy(update={"professional_id": professional_id, "professional_history": [*plan.professional_history, entry]}))


def record_plan(plan: CasePlan | None, draft: PlanDraft) -> Change[CasePlan]:
    meeting = _meeting_for_plan(plan)
    assert plan is not None
    known = {r.requirement_id for r in plan.requirements}
    unknown = sorted({r for a in draft.agreements for r in a.answers_requirements} - known)
    if unknown:
        raise InvalidInput(f"agreements answer unknown requirements: {', '.join(unknown)}", field="agreements")
    if len({a.agreement_id for a in draft.agreements}) != len(draft.agreements):
        raise InvalidInput("agreement ids must be unique", field="agreements")
    return _with_meeting(plan, meeting.model_copy(update={"plan": draft}))


def unmet(plan: CasePlan, draft: PlanDraft) -> list[str]:
    answered = {r for agreement in draft.agreements for r in agreement.answers_requirements}
    return [r.requirement_id for r in plan.requirements if r.requirement_id not in answered]


def counts(draft: PlanDraft) -> AgreementCounts:
    return AgreementCounts(
        network_support=sum(a.kind is AgreementKind.NETWORK_SUPPORT for a in draft.agreements),
        professional_help=sum(a.kind is AgreementKind.PROFESSIONAL_HELP for a in draft.agreements),
    )


def present(plan: CasePlan | None, now: datetime) -> Change[CasePlan]:
    meeting = _meeting_for_plan(plan)
    assert plan is not None
    if meeting.plan is None:
        raise RuleViolation("record the plan before presenting it")
    draft = meeting.plan
    missing = unmet(plan, draft)
    review = plan.statutory
    presented = PlanPresented(
        case_id=plan.case_id, conference_number=meeting.conference_number, meeting_number=meeting.number, presented_at=now, agreements=counts(draft),
        requested_service_categories=sorted({a.service_category for a in draft.agreements if a.service_category}),
        bottom_line_requirements=len(plan.requirements), requirements_all_met=not missing, review_required=review,
    )  # fmt: skip
    events: list[PlanPresented | PlanAccepted] = [presented]
    status = MeetingStatus.PRESENTED
    if not review:  # no statutory involvement: the family's plan stands as presented
        events.append(PlanAccepted(case_id=plan.case_id, conference_number=meeting.conference_number, meeting_number=meeting.number, accepted_at=now, agreements=counts(draft), reviewed_by_professional=False))
        status = MeetingStatus.ACCEPTED
    updated = meeting.model_copy(update={"status": status, "presentations": meeting.presentations + 1})
    return Change(_with_meeting(plan, updated).state, events)


def review(plan: CasePlan | None, professional: str, justification: str | None, now: datetime) -> Change[CasePlan]:
    if plan is None:
        raise NotFound("no such case")
    _not_erased(plan)
    responsible(plan, professional)
    if plan.current is None or plan.current.status is not MeetingStatus.PRESENTED:
        raise RuleViolation("there is no presented plan waiting for review")
    meeting = plan.current
    assert meeting.plan is not None
    missing = unmet(plan, meeting.plan)
    if missing and not justification:
        event: PlanAccepted | PlanRevisionRequested = PlanRevisionRequested(
            case_id=plan.case_id, conference_number=meeting.conference_number, meeting_number=meeting.number, requested_at=now, unmet_requirement_ids=missing
        )
        updated = meeting.model_copy(update={"status": MeetingStatus.REVISION_REQUESTED})
    else:
        event = PlanAccepted(
            case_id=plan.case_id, conference_number=meeting.conference_number, meeting_number=meeting.number, accepted_at=now, agreements=counts(meeting.plan),
            reviewed_by_professional=True, accepted_with_justification=bool(missing),
        )  # fmt: skip
        updated = meeting.model_copy(update={"status": MeetingStatus.ACCEPTED, "justification": justification if missing else None})
    return Change(_with_meeting(plan, updated).state, [event])


def second_meeting(plan: CasePlan | None, reason_category: str, now: datetime) -> Change[CasePlan]:
    return _end_meeting(plan, MeetingStatus.SECOND_MEETING, SecondMeetingNeeded, reason_category, now)


def no_plan(plan: CasePlan | None, reason_category: str, now: datetime) -> Change[CasePlan]:
    return _end_meeting(plan, MeetingStatus.NO_PLAN, NoPlanReached, reason_category, now)


def _end_meeting(
    plan: CasePlan | None, status: MeetingStatus, outcome: type[SecondMeetingNeeded | NoPlanReached], reason_category: str, now: datetime
) -> Change[CasePlan]:
    """The meeting ends without an accepted plan, for the recorded reason."""
    meeting = _meeting_after_conference(plan)
    assert plan is not None
    event = outcome(case_id=plan.case_id, conference_number=meeting.conference_number, meeting_number=meeting.number, recorded_at=now, reason_category=reason_category)
    updated = meeting.model_copy(update={"status": status, "reason_category": reason_category})
    return Change(_with_meeting(plan, updated).state, [event])


def _meeting_after_conference(plan: CasePlan | None) -> Meeting:
    if plan is None or plan.current is None:
        raise NotFound("no conference for this case yet")
    _not_erased(plan)
    if plan.current.status not in (MeetingStatus.HELD, MeetingStatus.REVISION_REQUESTED, MeetingStatus.PRESENTED):
        raise RuleViolation(f"meeting {plan.current.number} is {plan.current.status}")
    return plan.current


def _meeting_for_plan(plan: CasePlan | None) -> Meeting:
    meeting = _meeting_after_conference(plan)
    if meeting.status is MeetingStatus.PRESENTED:
        raise RuleViolation("the plan is waiting for the professional's review")
    return meeting


def _with_meeting(plan: CasePlan, meeting: Meeting) -> Change[CasePlan]:
    meetings = [meeting if _is(m, meeting.conference_number, meeting.number) else m for m in plan.meetings]
    return Change(plan.model_copy(update={"meetings": meetings}))
