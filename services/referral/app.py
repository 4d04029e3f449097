"""Wiring point of the referral service: settings, subscribers, stores, HTTP."""

from fastapi import FastAPI

from shared.runtime import KringService
from shared.settings import KringSettings

SERVICE = "referral"
DESCRIPTION = "Intake of referrals from bureaus (AMQP) and families (HTTP), consent, the family's personal data."


def create_app(settings: KringSettings | None = None) -> FastAPI:
    settings = settings or KringSettings(service_name=SERVICE)
    service = KringService(settings, description=DESCRIPTION)
    return service.http_app()
