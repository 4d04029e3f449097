"""HTTP of the scheduling service.

- ops: registers coordinators, sees every case and the waiting list, reassigns (with a
  reason), sees the 60-day figures and the cases at risk of breaching them;
- coordinator (token subject = coordinator id): sees and works on their own cases only,
  records the first contact with the family, sees which service standards of their cases
  are due soon (/cases/deadlines) and the waiting list of the provinces they work in (ids
  and why they wait, nothing of the family);
- funder (token organisation = funder id): the 60-day figures of its own cases.
"""

from collections.abc import Callable
from datetime import date, datetime

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.access import ANY_CASE, FUNDER_SLICE, OWN_CASES, Scope, change_owned, funder_slice, ownership, read_owned
from shared.auth import Principal, Role, authorised
from shared.contract.vocabulary import CancellationReason, Identifier, Province
from shared.domain import Change
from shared.errors import InvalidInput
from shared.logging import get_logger
from shared.standards import Standard, StandardsSettings

from . import domain
from .assignment import Assignments
from .domain import Case, Coordinator

log = get_logger("kring.scheduling")


class Reassignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    coordinator_id: Identifier
    reason: str = Field(min_length=3, max_length=300)


class ConferenceDate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    conference_date: date


class Cancellation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: CancellationReason


class FirstContact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contacted_at: AwareDatetime


class DueSoon(BaseModel):
    """A case that will miss a service standard unless it is met by `deadline`."""

    case_id: str
    coordinator_id: str | None
    conference_number: int
    standard: Standard
    target_days: int
    deadline: date
    days_left: int = Field(description="negative: missed already")


class WaitingCase(BaseModel):
    case_id: str
    province: Province
    reason: str | None
    days_waiting: int


IN_MY_PROVINCES = Scope({Role.COORDINATOR: "the cases waiting in the provinces they work in", Role.OPS: "every waiting case"})


class AtRisk(BaseModel):
    case_id: str
    coordinator_id: str | None
    reason: str


@ownership({Role.COORDINATOR: OWN_CASES, Role.OPS: ANY_CASE})
def may_see(caller: Principal, case: Case) -> bool:
    return caller.role is Role.OPS or (caller.role is Role.COORDINATOR and case.coordinator_id == caller.subject)


def router(assignments: Assignments, clock: Callable[[], datetime], standards: StandardsSettings | None = None) -> APIRouter:
    standards = standards or StandardsSettings()
    api = APIRouter()
    cases, coordinators = assignments.cases, assignments.coordinators
    ops = authorised(Role.OPS)
    coordinator_or_ops = authorised(Role.COORDINATOR, Role.OPS, owned=may_see)
    coordinator = authorised(Role.COORDINATOR, owned=may_see)

    async def change(case_id: str, caller: Principal, decide: Callable[[Case], Change[Case] | None]) -> Case:
        return await change_owned(cases, case_id, caller, may_see, decide)

    @api.put("/coordinators/{coordinator_id}", response_model=Coordinator, tags=["coordinators"])
    async def register_coordinator(
        coordinator_id: Identifier, profile: domain.CoordinatorProfile, caller: Principal = Depends(ops)
    ) -> Coordinator:
        """Register or update a coordinator. A professional care provider is refused. One with
        room is offered the longest waiting case they can take."""
        mutation = await coordinators.mutate(coordinator_id, lambda c: domain.register(c, coordinator_id, profile))
        assert mutation.state is not None
        return mutation.state

    @api.get("/coordinators", response_model=list[Coordinator], tags=["coordinators"])
    async def list_coordinators(caller: Principal = Depends(ops)) -> list[Coordinator]:
        return sorted(await assignments.all_coordinators(), key=lambda c: c.coordinator_id)

    @api.get("/cases", response_model=list[Case], tags=["cases"])
    async def list_cases(caller: Principal = Depends(coordinator_or_ops)) -> list[Case]:
        where = {"coordinator_id": caller.subject} if caller.role is Role.COORDINATOR else {}
        return [case for _, case in await cases.find(where)]

    @api.get("/cases/waiting", response_model=list[WaitingCase], tags=["cases"])
    async def waiting_list(caller: Principal = Depends(authorised(Role.OPS, Role.COORDINATOR, owned=IN_MY_PROVINCES))) -> list[WaitingCase]:
        """Cases with consent that no coordinator could take yet, and why (a coordinator: in their provinces)."""
        today = clock().date()
        waiting = await assignments.waiting()
        if caller.role is Role.COORDINATOR:
            me = await coordinators.get(caller.subject)
            provinces = set(me.profile.provinces) if me else set()
            waiting = [case for case in waiting if case.referral.region.province in provinces]
        return [
            WaitingCase(
                case_id=case.case_id, province=case.referral.region.province, reason=case.waiting_reason,
                days_waiting=max(0, (today - case.waiting_since.date()).days),
            )  # fmt: skip
            for case in waiting
        ]

    @api.get("/cases/at-risk", response_model=list[AtRisk], tags=["sixty days"])
    async def at_risk(caller: Principal = Depends(ops)) -> list[AtRisk]:
        """Open cases that will miss the 60-day target unless someone acts."""
        today = clock().date()
        open_stages = [stage.value for stage in (domain.Stage.UNASSIGNED, domain.Stage.PREPARING, domain.Stage.SCHEDULED)]
        return [
            AtRisk(case_id=case_id, coordinator_id=case.coordinator_id, reason=reason)
            for case_id, case in await cases.find({"stage": {"$in": open_stages}})
            if (reason := domain.at_risk(case, today)) is not None
        ]

    @api.get("/cases/deadlines", response_model=list[DueSoon], tags=["service standards"])
    async def deadlines(
        within_days: int = Query(default=7, ge=0, le=365, description="deadlines up to this many days from today (and those missed)"),
        caller: Principal = Depends(coordinator_or_ops),
    ) -> list[DueSoon]:
        """My cases (ops: all) about to miss a service standard: first contact after the
        assignment, the first conference, the three-month check; which standard, the deadline,
        the days left (negative: missed already). Soonest first. Targets per funder:
        KRING_STANDARD_* (docs/funders.md)."""
        today = clock().date()
        where = {"coordinator_id": caller.subject} if caller.role is Role.COORDINATOR else {}
        soon = []
        for case_id, case in await cases.find(where):
            targets = standards.targets_for(case.referral.funder_id)
            for due in domain.deadlines(case, targets, today):
                if due.days_left <= within_days:
                    soon.append(
                        DueSoon(
                            case_id=case_id, coordinator_id=case.coordinator_id, conference_number=case.conference_number,
                            standard=due.standard, target_days=targets.days(due.standard), deadline=due.deadline, days_left=due.days_left,
                        )
                    )  # fmt: skip
        return sorted(soon, key=lambda d: (d.deadline, d.case_id, d.standard))

    @api.get("/sixty-days", response_model=domain.SixtyDays, tags=["sixty days"])
    async def sixty_days(
        funder_id: Identifier | None = Query(default=None),
        province: Province | None = Query(default=None),
        caller: Principal = Depends(authorised(Role.OPS, Role.FUNDER, owned=FUNDER_SLICE)),
    ) -> domain.SixtyDays:
        """Share of first conferences held within 60 days of referral (reference: 65%)."""
        funder_id = funder_slice(caller, funder_id)
        where: dict[str, object] = {}
        if funder_id:
            where["referral.funder_id"] = funder_id
        if province:
            where["referral.region.province"] = province.value
        return domain.sixty_day_share([case for _, case in await cases.find(where)])

    @api.get("/cases/{case_id}", response_model=Case, tags=["cases"])
    async def read_case(case_id: str, caller: Principal = Depends(coordinator_or_ops)) -> Case:
        return await read_owned(cases, case_id, caller, may_see)

    @api.put("/cases/{case_id}/preparation", response_model=Case, tags=["preparation"])
    async def prepare(case_id: str, preparation: domain.Preparation, caller: Principal = Depends(coordinator)) -> Case:
        """The network map and arrangements, in counts by role."""
        return await change(case_id, caller, lambda c: domain.prepare(c, preparation))

    @api.put("/cases/{case_id}/conference", response_model=Case, tags=["preparation"])
    async def set_date(case_id: str, body: ConferenceDate, caller: Principal = Depends(coordinator)) -> Case:
        """Set or move the conference date (ConferenceScheduled / ConferenceRescheduled)."""
        today = clock().date()
        return await change(case_id, caller, lambda c: domain.schedule(c, body.conference_date, today))

    @api.post("/cases/{case_id}/held", response_model=Case, tags=["conference"])
    async def record_held(case_id: str, attendance: domain.Attendance, caller: Principal = Depends(coordinator)) -> Case:
        """The conference took place: attendance by role, and whether every parent with
        parental responsibility was there."""
        if attendance.attended.total == 0:
            raise InvalidInput("nobody attended: cancel the conference instead", field="attended")
        today = clock().date()
        return await change(case_id, caller, lambda c: domain.held(c, attendance, today))

    @api.post("/cases/{case_id}/first-contact", response_model=Case, tags=["preparation"])
    async def record_first_contact(case_id: str, body: FirstContact, caller: Principal = Depends(coordinator)) -> Case:
        """The coordinator reached the family for the first time (FirstContactMade: the
        first-contact standard). When only; the same moment again changes nothing."""
        now = clock()
        return await change(case_id, caller, lambda c: domain.first_contact(c, caller.subject, body.contacted_at, now))

    @api.post("/cases/{case_id}/cancellation", response_model=Case, tags=["conference"])
    async def cancel(case_id: str, body: Cancellation, caller: Principal = Depends(coordinator_or_ops)) -> Case:
        """Cancel the conference: the case ends and its coordinator's place is given back."""
        now = clock()
        return await change(case_id, caller, lambda c: domain.cancel(c, body.reason, now))

    @api.post("/cases/{case_id}/reassignment", response_model=Case, tags=["cases"])
    async def reassign(case_id: str, body: Reassignment, caller: Principal = Depends(ops)) -> Case:
        """Move a case to another coordinator, with the reason (kept in the log)."""
        case = await assignments.reassign(case_id, body.coordinator_id)
        log.info("case reassigned", case_id=case_id, to=body.coordinator_id, by=caller.subject, reason_length=len(body.reason))
        return case

    return api
