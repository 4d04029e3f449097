"""HTTP of the plans service. The coordinator of the case writes the plan; the statutory
professional sets bottom-line requirements and reviews; the family reads its own plan;
nobody else reads it."""

from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from shared.access import OWN_CASE, OWN_CASES, change_owned, ownership, read_owned
from shared.auth import Principal, Role, authorised
from shared.domain import Change
from shared.store import AggregateStore

from . import domain
from .domain import CasePlan

NOT_YOURS = "this plan is not yours to see"


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


@ownership(
    {
        Role.COORDINATOR: OWN_CASES,
        Role.PROFESSIONAL: "statutory cases only, not held by another professional",
        Role.FAMILY: OWN_CASE,
    }
)
def may_see(caller: Principal, plan: CasePlan) -> bool:
    match caller.role:
        case Role.COORDINATOR:
            return plan.coordinator_id == caller.subject
        case Role.PROFESSIONAL:
            return plan.statutory and plan.professional_id in (None, caller.subject)
        case Role.FAMILY:
            return caller.case_id == plan.case_id
    return False


@ownership({Role.PROFESSIONAL: "cases not held by another professional (the first to act holds it)"})
def may_set_requirements(caller: Principal, plan: CasePlan) -> bool:
    return plan.professional_id in (None, caller.subject)


def router(plans: AggregateStore[CasePlan], clock: Callable[[], datetime]) -> APIRouter:
    api = APIRouter()

    async def change(case_id: str, caller: Principal, decide: Callable[[CasePlan], Change[CasePlan]]) -> CasePlan:
        return await change_owned(plans, case_id, caller, may_see, decide, refusal=NOT_YOURS)

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
        """A bottom-line requirement, before the conference, already shared with the family."""
        now = clock()
        return await change_owned(
            plans, case_id, caller, may_set_requirements,
            lambda p: domain.add_requirement(p, case_id, requirement, caller.subject, now),
            refusal="another professional holds statutory responsibility",
        )  # fmt: skip

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
        """Accepted when every requirement is answered (or with a justification); otherwise a
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
