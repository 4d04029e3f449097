"""Wiring point of the scheduling service: settings, subscribers, stores, HTTP."""

from faststream.asgi import AsgiFastStream

from shared.runtime import KringService
from shared.settings import KringSettings

SERVICE = "scheduling"
DESCRIPTION = "Independent coordinators, assignment, preparation and the conference date."


def create_app(settings: KringSettings | None = None) -> AsgiFastStream:
    settings = settings or KringSettings(service_name=SERVICE)
    service = KringService(settings, description=DESCRIPTION)
    return service.asgi()
