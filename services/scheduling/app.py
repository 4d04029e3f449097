"""Wiring point of the scheduling service: stores, subscribers, the waiting-list sweep, HTTP."""

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from shared.contract.events import (
    ConferenceCancelled,
    ConferenceHeld,
    ConferenceRescheduled,
    ConferenceScheduled,
    CoordinatorAssigned,
    CoordinatorWanted,
    FirstContactMade,
    PlaceFreed,
    PlaceReleaseRequested,
    PlaceReserved,
)
from shared.memory import MemoryStorage
from shared.runtime import KringService
from shared.settings import KringSettings
from shared.standards import StandardsSettings
from shared.store import AggregateStore, utc_now

from . import handlers, routes
from .assignment import QUERIED, Assignments
from .domain import Case, Coordinator, Stage, at_risk

SERVICE = "scheduling"
DESCRIPTION = "Independent coordinators, assignment, preparation and the conference date; the 60-day target."
SWEEP_SECONDS = 30.0


async def share_at_risk(cases: AggregateStore[Case], clock: Callable[[], datetime]) -> float:
    """Of the open first-meeting cases, the share at risk of missing the 60-day target
    (domain.at_risk, as GET /cases/at-risk lists them); 0 with none open."""
    today = clock().date()
    stages = [stage.value for stage in (Stage.UNASSIGNED, Stage.PREPARING, Stage.SCHEDULED)]
    first = [case for _, case in await cases.find({"stage": {"$in": stages}}) if case.meeting_number == 1]
    return sum(at_risk(case, today) is not None for case in first) / len(first) if first else 0.0


def create_app(
    settings: KringSettings | None = None,
    *,
    clock: Callable[[], datetime] = utc_now,
    storage: MemoryStorage | None = None,
    standards: StandardsSettings | None = None,
) -> FastAPI:
    settings = settings or KringSettings(service_name=SERVICE)
    service = KringService(settings, description=DESCRIPTION, storage=storage, clock=clock)
    cases = service.aggregate_store("cases", Case, clock=clock, queried=QUERIED)
    coordinators = service.aggregate_store("coordinators", Coordinator, clock=clock)
    assignments = Assignments(cases, coordinators, clock)
    handlers.register(service, assignments, clock)
    service.every(SWEEP_SECONDS, assignments.sweep)
    service.gauge("kring_scheduling_cases_waiting", "Cases with consent that no coordinator could take yet", assignments.waiting)
    service.gauge("kring_scheduling_sixty_day_share_at_risk", "Of the open first meetings, the share that will miss 60 days", lambda: share_at_risk(cases, clock))
    service.documents(
        CoordinatorAssigned, ConferenceScheduled, ConferenceRescheduled, ConferenceHeld, ConferenceCancelled, FirstContactMade,
        CoordinatorWanted, PlaceReserved, PlaceReleaseRequested, PlaceFreed,
    )  # fmt: skip
    app = service.http_app(routes.router(assignments, clock, standards or StandardsSettings()))
    app.state.assignments = assignments
    return app
