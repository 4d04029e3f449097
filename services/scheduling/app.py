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
    PlaceFreed,
    PlaceReleaseRequested,
    PlaceReserved,
)
from shared.memory import MemoryStorage
from shared.runtime import KringService
from shared.settings import KringSettings
from shared.store import utc_now

from . import handlers, routes
from .assignment import QUERIED, Assignments
from .domain import Case, Coordinator

SERVICE = "scheduling"
DESCRIPTION = "Independent coordinators, assignment, preparation and the conference date; the 60-day target."
SWEEP_SECONDS = 30.0


def create_app(
    settings: KringSettings | None = None, *, clock: Callable[[], datetime] = utc_now, storage: MemoryStorage | None = None
) -> FastAPI:
    settings = settings or KringSettings(service_name=SERVICE)
    service = KringService(settings, description=DESCRIPTION, storage=storage, clock=clock)
    cases = service.aggregate_store("cases", Case, clock=clock, queried=QUERIED)
    coordinators = service.aggregate_store("coordinators", Coordinator, clock=clock)
    assignments = Assignments(cases, coordinators, clock)
    handlers.register(service, assignments, clock)
    service.every(SWEEP_SECONDS, assignments.sweep)
    service.documents(
        CoordinatorAssigned, ConferenceScheduled, ConferenceRescheduled, ConferenceHeld, ConferenceCancelled,
        CoordinatorWanted, PlaceReserved, PlaceReleaseRequested, PlaceFreed,
    )  # fmt: skip
    app = service.http_app(routes.router(assignments, clock))
    app.state.assignments = assignments
    return app
