"""HTTP of the follow-up service.

- coordinator (subject = coordinator id): their cases' follow-up; move the date with a
  reason; record the three-month check;
- ops: everything, late checks, intervals per funder, replays into a funder's own queue;
- funder (organisation = funder id): the report of its own cases only.
"""

from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.access import ANY_CASE, FUNDER_SLICE, OWN_CASES, change_owned, funder_slice, ownership, read_owned
from shared.auth import Principal, Role, authorised
from shared.contract.vocabulary import Identifier, Province
from shared.domain import Change
from shared.errors import NotFound
from shared.http import Refusal
from shared.logging import get_logger
from shared.messaging.publisher import EventPublisher, Unroutable
from shared.pseudonym import Pseudonyms
from shared.store import AggregateStore

from . import domain, partner, report_html
from .domain import FollowUp, Interval
from .tracking import Tracking

log = get_logger("kring.followup")


class NewDueDate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    due_at: AwareDatetime
    reason: str = Field(min_length=3, max_length=300)


class Replay(BaseModel):
    """Only the funder: its history goes to its own queue, never to one the caller names."""

    model_config = ConfigDict(extra="forbid")
    funder_id: Identifier


class LateCheck(BaseModel):
    case_id: str
    coordinator_id: str | None
    due_at: AwareDatetime
    days_overdue: int


@ownership({Role.COORDINATOR: OWN_CASES, Role.OPS: ANY_CASE})
def may_see(caller: Principal, followup: FollowUp) -> bool:
    return caller.role is Role.OPS or (caller.role is Role.COORDINATOR and followup.coordinator_id == caller.subject)


def router(
    tracking: Tracking, partner_log: AggregateStore[partner.SentOutcome], publisher: EventPublisher, clock: Callable[[], datetime],
    pseudonyms: Pseudonyms,
) -> APIRouter:
    api = APIRouter()
    followups = tracking.followups

    async def own(case_id: str, caller: Principal) -> FollowUp:
        return await read_owned(followups, case_id, caller, may_see)

    async def change(case_id: str, caller: Principal, decide: Callable[[FollowUp], Change[FollowUp] | None]) -> FollowUp:
        return await change_owned(followups, case_id, caller, may_see, decide)

    @api.get("/cases/{case_id}", response_model=FollowUp, response_model_exclude={"counted"}, tags=["follow-up"])
    async def read(case_id: str, caller: Principal = Depends(authorised(Role.COORDINATOR, Role.OPS, owned=may_see))) -> FollowUp:
        return await own(case_id, caller)

    @api.put("/cases/{case_id}/due", response_model=FollowUp, response_model_exclude={"counted"}, tags=["follow-up"])
    async def move(case_id: str, body: NewDueDate, caller: Principal = Depends(authorised(Role.COORDINATOR, owned=may_see))) -> FollowUp:
        """Move the check to another date, saying why."""
        followup = await change(case_id, caller, lambda f: domain.move(f, body.due_at))
        log.info("follow-up moved", case_id=case_id, by=caller.subject, reason_length=len(body.reason))
        return followup

    @api.post("/cases/{case_id}/check", response_model=FollowUp, response_model_exclude={"counted"}, tags=["follow-up"])
    async def record_check(case_id: str, check: domain.Check, caller: Principal = Depends(authorised(Role.COORDINATOR, owned=may_see))) -> FollowUp:
        """The three-month check: execution, ratings by group, outcomes per child."""
        now = clock()
        return await change(case_id, caller, lambda f: domain.complete(f, check, now, pseudonyms))

    @api.get("/checks/late", response_model=list[LateCheck], tags=["follow-up"])
    async def late(caller: Principal = Depends(authorised(Role.OPS))) -> list[LateCheck]:
        """Checks overdue by more than 14 days."""
        now = clock()
        return [
            LateCheck(case_id=case_id, coordinator_id=f.coordinator_id, due_at=f.due_at, days_overdue=(now - f.due_at).days)
            for case_id, f in await tracking.late()
            if f.due_at is not None
        ]

    @api.put("/intervals/{funder_id}", response_model=Interval, tags=["follow-up"])
    async def set_interval(
        funder_id: Identifier, interval: Interval, province: Province | None = Query(default=None),
        caller: Principal = Depends(authorised(Role.OPS)),
    ) -> Interval:  # fmt: skip
        """Days from plan acceptance to the check for a funder (or one of its provinces)."""
        key = f"{funder_id}:{province.value}" if province else funder_id
        await tracking.intervals.mutate(key, lambda _: Change(interval))
        return interval

    async def build_report(funder_id: str | None, province: Province | None, period: str | None, caller: Principal) -> domain.Report:
        return await tracking.report(funder_slice(caller, funder_id), province.value if province else None, period)

    period_query = Query(default=None, pattern=r"^[0-9]{4}-Q[1-4]$")
    reader = authorised(Role.OPS, Role.FUNDER, owned=FUNDER_SLICE)

    @api.get("/reports", response_model=domain.Report, tags=["report"])
    async def report(
        funder_id: Identifier | None = None, province: Province | None = None, period: str | None = period_query,
        caller: Principal = Depends(reader),
    ) -> domain.Report:  # fmt: skip
        return await build_report(funder_id, province, period, caller)

    @api.get("/reports.html", response_class=HTMLResponse, tags=["report"])
    async def report_page(
        funder_id: Identifier | None = None, province: Province | None = None, period: str | None = period_query,
        caller: Principal = Depends(reader),
    ) -> HTMLResponse:  # fmt: skip
        return HTMLResponse(report_html.render(await build_report(funder_id, province, period, caller)))

    @api.post("/partner/replay", tags=["partner"], responses={404: {"description": "no partner queue for this funder", "model": Refusal}})
    async def replay(body: Replay, caller: Principal = Depends(authorised(Role.OPS))) -> dict[str, int]:
        """Publish a funder's outcome history again into its own (new) queue
        `<prefix>.partner.<funder_id>`."""
        try:
            count = await partner.replay(partner_log, publisher, body.funder_id, pseudonyms)
        except Unroutable:
            raise NotFound(f"no partner queue for funder {body.funder_id}") from None
        return {"replayed": count}

    return api
