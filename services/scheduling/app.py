"""Wiring point of the scheduling service: stores, subscribers, sweeps, HTTP."""

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from shared.contract.events import (
    ConferenceCancelled,
    ConferenceHeld,
    ConferenceRescheduled,
    ConferenceScheduled,
    CoordinatorAssigned,
)
from shared.outbox import utc_now
from shared.runtime import KringService
from shared.settings import KringSettings

from . import handlers, routes
from .assignment import Assignments
from .domain import Case, Coordinator

SERVICE = "scheduling"
DESCRIPTION = "Independent coordinators, assignment, preparation and the conference date; the 60-day target."
SWEEP_SECONDS = 30.0


def create_app(settings: KringSettings | None = None, *, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    settings = settings or KringSettings(service_name=SERVICE)
    service = KringService(settings, description=DESCRIPTION)
    cases = service.aggregate_store("cases", Case)
    coordinators = service.aggregate_store("coordinators", Coordinator)
    cases.clock = coordinators.clock = clock
    assignments = Assignments(cases, coordinators, clock)
    handlers.register(service, assignments, clock)
    service.every(SWEEP_SECONDS, assignments.sweep)
    service.every(settings.key_list_completion_seconds, assignments.reconcile, spread=True)
    service.documents(CoordinatorAssigned, ConferenceScheduled, ConferenceRescheduled, ConferenceHeld, ConferenceCancelled)
    app = service.http_app(routes.router(assignments, clock))
    app.state.assignments = assignments
    return app
