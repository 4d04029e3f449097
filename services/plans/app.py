"""Wiring point of the plans service: store, subscribers, HTTP."""

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from shared.contract.events import NoPlanReached, PlanAccepted, PlanPresented, PlanRevisionRequested, SecondMeetingNeeded
from shared.family_access import family_access
from shared.memory import MemoryStorage
from shared.runtime import KringService
from shared.settings import KringSettings
from shared.store import utc_now

from . import handlers, routes
from .domain import CasePlan

SERVICE = "plans"
DESCRIPTION = "The family's plan, bottom-line requirements and professional acceptance."


def create_app(
    settings: KringSettings | None = None, *, clock: Callable[[], datetime] = utc_now, storage: MemoryStorage | None = None
) -> FastAPI:
    settings = settings or KringSettings(service_name=SERVICE)
    service = KringService(settings, description=DESCRIPTION, storage=storage, clock=clock)
    plans = service.aggregate_store("plans", CasePlan, clock=clock, queried=routes.QUERIED)
    handlers.register(service, plans)
    service.documents(PlanPresented, PlanAccepted, PlanRevisionRequested, SecondMeetingNeeded, NoPlanReached)
    app = service.http_app(routes.router(plans, clock))

    async def erased_at(case_id: str) -> datetime | None:  # the plan's own record of the erasure
        plan = await plans.get(case_id)
        return plan.personal_data_erased_at if plan else None

    # the family reads its plan until its access is revoked: withdrawal (event) or erasure (own record)
    app.state.family_access = family_access(service, erased_at)
    return app
