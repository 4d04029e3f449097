"""HTTP of the plans service. The coordinator of the case writes the plan; the case's
responsible professional (named in the referral, or assigned by operations) sets bottom-line
requirements and reviews; the family reads its own plan, with the requirements; nobody else
reads it. Operations rebinds the responsible professional, with a reason, without reading
the plan."""

from collections.abc import Callable
from datetime import date, datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from shared.access import OWN_CASE, OWN_CASES, change_owned, ownership, read_owned
from shared.auth import Principal, Role, authorised
from shared.contract.vocabulary import Identifier
from shared.domain import Change
from shared.store import AggregateStore

from . import domain
from .domain import CasePlan, ProfessionalChange, ReassignmentReason

NOT_YOURS = "this plan is not yours to see"
QUERIED = [("coordinator_id",), ("professional_id",)]  # the case lists


class Review(BaseModel):
    model_config = ConfigDict(extra="forbid")
    justification: str | None = Field(
        default=None, min_length=10, max_length=2000,
        description="accept although a requirement is not answered, and why",
    )  # fmt: skip


class ReviewedPlan(CasePlan):
    unmet_requirement_ids: list[str] = Field(
        description="the requirements no agreement answers: why a revision was requested (status "
        "revision_requested), or what an acceptance with justification accepts; empty when all are answered"
    )


class Outcome(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason_category: str = Field(pattern=r"^[a-z][a-z_]{2,59}$", description="e.g. network_incomplete, family_disagreed")


class ProfessionalAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    professional_id: Identifier = Field(description="the professional with statutory responsibility (an id, no name)")
    reason: ReassignmentReason


class CaseSummary(BaseModel):
    """A line of the caller's case list: where the plan stands, without its texts."""

    case_id: str
    statutory: bool
    status: domain.MeetingStatus | None = Field(description="the current meeting's; none before a conference is scheduled")
    conference_date: date | None
    requirements: int = Field(description="how many bottom-line requirements are set")


class ProfessionalView(BaseModel):
    """Who is responsible for the case, and since when: what operations sees (not the plan)."""

    case_id: str
    professional_id: str | None
    professional_history: list[ProfessionalChange]


@ownership(
    {
        Role.COORDINATOR: OWN_CASES,
        Role.PROFESSIONAL: "the statutory cases it is bound to (named in the referral, or by ops)",
        Role.FAMILY: OWN_CASE,
    }
)
def may_see(caller: Principal, plan: CasePlan) -> bool:
    match caller.role:
        case Role.COORDINATOR:
            return plan.coordinator_id == caller.subject
        case Role.PROFESSIONAL:
            return plan.statutory and plan.professional_id is not None and plan.professional_id == caller.subject
        case Role.FAMILY:
            return caller.case_id == plan.case_id
    return False


@ownership({Role.PROFESSIONAL: "the statutory cases it is bound to (named in the referral, or by ops)"})
def may_set_requirements(caller: Principal, plan: CasePlan) -> bool:
    """Any professional reaches the rule (a case that allows no requirements is refused with
    its reason); the rule admits the case's responsible professional only."""
    return caller.role is Role.PROFESSIONAL


def may_assign(caller: Principal, plan: CasePlan) -> bool:
    return caller.role is Role.OPS


def router(plans: AggregateStore[CasePlan], clock: Callable[[], datetime]) -> APIRouter:
    api = APIRouter()

    async def change(case_id: str, caller: Principal, decide: Callable[[CasePlan], Change[CasePlan]]) -> CasePlan:
        return await change_owned(plans, case_id, caller, may_see, decide, refusal=NOT_YOURS)

    @api.get("/cases", response_model=list[CaseSummary], tags=["plan"])
    async def list_cases(caller: Principal = Depends(authorised(Role.COORDINATOR, Role.PROFESSIONAL, owned=may_see))) -> list[CaseSummary]:
        """The caller's own cases: a coordinator's, or the statutory cases a professional is bound to."""
        field = "coordinator_id" if caller.role is Role.COORDINATOR else "professional_id"
        return [
            CaseSummary(
                case_id=plan.case_id, statutory=plan.statutory, requirements=len(plan.requirements),
                status=plan.current.status if plan.current else None, conference_date=plan.current.conference_date if plan.current else None,
            )  # fmt: skip
            for _, plan in await plans.find({field: caller.subject})
            if may_see(caller, plan) and plan.personal_data_erased_at is None
        ]

    @api.get("/cases/{case_id}/plan", response_model=CasePlan, tags=["plan"])
    async def read_plan(
        case_id: str, caller: Principal = Depends(authorised(Role.COORDINATOR, Role.PROFESSIONAL, Role.FAMILY, owned=may_see))
    ) -> CasePlan:
        """The plan, with the bottom-line requirements and which agreement answers which."""
        return await read_owned(plans, case_id, caller, may_see, refusal=NOT_YOURS)

    @api.post("/cases/{case_id}/requirements", response_model=CasePlan, status_code=201, tags=["requirements"])
    async def add_requirement(
        case_id: str, requirement: domain.NewRequirement, caller: Principal = Depends(authorised(Role.PROFESSIONAL, owned=may_set_requirements))
    ) -> CasePlan:
        """A bottom-line requirement, before the conference, already shared with the family:
        by the case's responsible professional only (403 for anyone else), and only with a
        supervision order or out-of-home placement (409 otherwise)."""
        now = clock()
        return await change_owned(
            plans, case_id, caller, may_set_requirements, lambda p: domain.add_requirement(p, requirement, caller.subject, now)
        )

    @api.put("/cases/{case_id}/professional", response_model=ProfessionalView, tags=["requirements"])
    async def assign_professional(
        case_id: str, body: ProfessionalAssignment, caller: Principal = Depends(authorised(Role.OPS))
    ) -> ProfessionalView:
        """Operations binds the case to another responsible professional (or to one where
        the referral named none); the reason is kept in the case's history."""
        now = clock()
        plan = await change_owned(
            plans, case_id, caller, may_assign,
            lambda p: domain.assign_professional(p, body.professional_id, body.reason, caller.subject, now),
        )  # fmt: skip
        return ProfessionalView(case_id=plan.case_id, professional_id=plan.professional_id, professional_history=plan.professional_history)

    @api.put("/cases/{case_id}/plan", response_model=CasePlan, tags=["plan"])
    async def record_plan(case_id: str, draft: domain.PlanDraft, caller: Principal = Depends(authorised(Role.COORDINATOR, owned=may_see))) -> CasePlan:
        """The plan the family wrote, as the coordinator records it after the conference."""
        return await change(case_id, caller, lambda p: domain.record_plan(p, draft))

    @api.post("/cases/{case_id}/plan/presentation", response_model=CasePlan, tags=["plan"])
    async def present(case_id: str, caller: Principal = Depends(authorised(Role.COORDINATOR, owned=may_see))) -> CasePlan:
        now = clock()
        return await change(case_id, caller, lambda p: domain.present(p, now))

    @api.post("/cases/{case_id}/plan/review", response_model=ReviewedPlan, tags=["plan"])
    async def review(case_id: str, body: Review, caller: Principal = Depends(authorised(Role.PROFESSIONAL, owned=may_see))) -> ReviewedPlan:
        """By the case's responsible professional only. Accepted when every requirement is answered (or with a justification); otherwise a
        revision is requested naming the unmet requirements (`unmet_requirement_ids`, as in
        PlanRevisionRequested)."""
        now = clock()
        plan = await change(case_id, caller, lambda p: domain.review(p, caller.subject, body.justification, now))
        meeting = plan.current
        assert meeting is not None and meeting.plan is not None  # domain.review refused otherwise
        return ReviewedPlan(**plan.model_dump(), unmet_requirement_ids=domain.unmet(plan, meeting.plan))

    @api.post("/cases/{case_id}/second-meeting", response_model=CasePlan, tags=["outcome"])
    async def second_meeting(case_id: str, body: Outcome, caller: Principal = Depends(authorised(Role.COORDINATOR, owned=may_see))) -> CasePlan:
        now = clock()
        return await change(case_id, caller, lambda p: domain.second_meeting(p, body.reason_category, now))

    @api.post("/cases/{case_id}/no-plan", response_model=CasePlan, tags=["outcome"])
    async def no_plan(case_id: str, body: Outcome, caller: Principal = Depends(authorised(Role.COORDINATOR, owned=may_see))) -> CasePlan:
        now = clock()
        return await change(case_id, caller, lambda p: domain.no_plan(p, body.reason_category, now))

    return api
