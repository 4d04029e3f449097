"""Wiring point of the followup service: settings, subscribers, stores, HTTP."""

from fastapi import FastAPI

from shared.runtime import KringService
from shared.settings import KringSettings

SERVICE = "followup"
DESCRIPTION = "The three-month follow-up, outcomes and what funders see."


def create_app(settings: KringSettings | None = None) -> FastAPI:
    settings = settings or KringSettings(service_name=SERVICE)
    service = KringService(settings, description=DESCRIPTION)
    return service.http_app()
