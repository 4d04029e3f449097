"""Wiring point of the plans service: settings, subscribers, stores, HTTP."""

from fastapi import FastAPI

from shared.runtime import KringService
from shared.settings import KringSettings

SERVICE = "plans"
DESCRIPTION = "The family's plan, bottom-line requirements and professional acceptance."


def create_app(settings: KringSettings | None = None) -> FastAPI:
    settings = settings or KringSettings(service_name=SERVICE)
    service = KringService(settings, description=DESCRIPTION)
    return service.http_app()
