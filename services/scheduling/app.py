"""Wiring point of the scheduling service: settings, subscribers, stores, HTTP."""

from fastapi import FastAPI

from shared.runtime import KringService
from shared.settings import KringSettings

SERVICE = "scheduling"
DESCRIPTION = "Independent coordinators, assignment, preparation and the conference date."


def create_app(settings: KringSettings | None = None) -> FastAPI:
    settings = settings or KringSettings(service_name=SERVICE)
    service = KringService(settings, description=DESCRIPTION)
    return service.http_app()
