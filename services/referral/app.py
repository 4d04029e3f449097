"""Wiring point of the referral service: settings, subscribers, stores, HTTP."""

from faststream.asgi import AsgiFastStream

from shared.runtime import KringService
from shared.settings import KringSettings

SERVICE = "referral"
DESCRIPTION = "Intake of referrals from bureaus (AMQP) and families (HTTP), consent, the family's personal data."


def create_app(settings: KringSettings | None = None) -> AsgiFastStream:
    settings = settings or KringSettings(service_name=SERVICE)
    service = KringService(settings, description=DESCRIPTION)
    return service.asgi()
