"""HTTP of the plans service. The coordinator of the case writes the plan; the statutory
professional sets bottom-line requirements and reviews; the family reads its own plan;
nobody else reads it."""

from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from shared.auth import Principal, Role, authorised
from shared.http import invalid_field
from shared.store import AggregateStore, Change

from . import domain
from .domain import CasePlan


class Review(BaseModel):
    model_config = ConfigDict(extra="forbid")
    justification: str | None = Field(
        default=None, min_length=10, max_length=2000,
        description="accept although a requirement is not answered, and why",
    )  # fmt: skip


class Outcome(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason_category: str = Field(pattern=r"^[a-z][a-z_]{2,59}$", description="e.g. network_incomplete, family_disagreed")


def router(plans: AggregateStore[CasePlan], clock: Callable[[], datetime]) -> APIRouter:
    api = APIRouter()

    async def allowed(case_id: str, caller: Principal) -> CasePlan:
        plan = await plans.get(case_id)
        if plan is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such case")
        ok = {
            Role.COORDINATOR: plan.coordinator_id == caller.subject,
            Role.PROFESSIONAL: plan.professional_id in (None, caller.subject) and plan.statutory,
            Role.FAMILY: caller.case_id == case_id,
        }.get(caller.role, False)
        if not ok:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this plan is not yours to see")
        return plan

    async def change(case_id: str, caller: Principal, decide: Callable[[CasePlan | None], Change[CasePlan]]) -> CasePlan:
        await allowed(case_id, caller)
        try:
            mutation = await plans.mutate(case_id, decide)
        except PermissionError as error:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(error)) from None
        except LookupError as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(error)) from None
        except ValueError as error:
            raise invalid_field((), str(error)) from None
        assert mutation.state is not None
        return mutation.state

    @api.get("/cases/{case_id}/plan", response_model=CasePlan, tags=["plan"])
    async def read_plan(
        case_id: str, caller: Principal = Depends(authorised(Role.COORDINATOR, Role.PROFESSIONAL, Role.FAMILY))
    ) -> CasePlan:
        """The plan, with the bottom-line requirements and which agreement answers which."""
        return await allowed(case_id, caller)

    @api.post("/cases/{case_id}/requirements", response_model=CasePlan, status_code=201, tags=["requirements"])
    async def add_requirement(
        case_id: str, requirement: domain.NewRequirement, caller: Principal = Depends(authorised(Role.PROFESSIONAL))
    ) -> CasePlan:
        """A bottom-line requirement, before the conference, already shared with the family."""
        plan = await plans.get(case_id)
        if plan is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such case")
        if plan.professional_id not in (None, caller.subject):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="another professional holds statutory responsibility")
        now = clock()
        try:
            mutation = await plans.mutate(case_id, lambda p: domain.add_requirement(p, case_id, requirement, caller.subject, now))
        except PermissionError as error:
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(error)) from None
        assert mutation.state is not None
        return mutation.state

    @api.put("/cases/{case_id}/plan", response_model=CasePlan, tags=["plan"])
    async def record_plan(case_id: str, draft: domain.PlanDraft, caller: Principal = Depends(authorised(Role.COORDINATOR))) -> CasePlan:
        """The plan the family wrote, as the coordinator records it after the conference."""
        return await change(case_id, caller, lambda p: domain.record_plan(p, draft))

    @api.post("/cases/{case_id}/plan/presentation", response_model=CasePlan, tags=["plan"])
    async def present(case_id: str, caller: Principal = Depends(authorised(Role.COORDINATOR))) -> CasePlan:
        now = clock()
        return await change(case_id, caller, lambda p: domain.present(p, now))

    @api.post("/cases/{case_id}/plan/review", response_model=CasePlan, tags=["plan"])
    async def review(case_id: str, body: Review, caller: Principal = Depends(authorised(Role.PROFESSIONAL))) -> CasePlan:
        """Accepted when every requirement is answered (or with a justification); otherwise a
        revision is requested naming the unmet requirements."""
        now = clock()
        return await change(case_id, caller, lambda p: domain.review(p, caller.subject, body.justification, now))

    @api.post("/cases/{case_id}/second-meeting", response_model=CasePlan, tags=["outcome"])
    async def second_meeting(case_id: str, body: Outcome, caller: Principal = Depends(authorised(Role.COORDINATOR))) -> CasePlan:
        now = clock()
        return await change(case_id, caller, lambda p: domain.second_meeting(p, body.reason_category, now))

    @api.post("/cases/{case_id}/no-plan", response_model=CasePlan, tags=["outcome"])
    async def no_plan(case_id: str, body: Outcome, caller: Principal = Depends(authorised(Role.COORDINATOR))) -> CasePlan:
        now = clock()
        return await change(case_id, caller, lambda p: domain.no_plan(p, body.reason_category, now))

    return api
