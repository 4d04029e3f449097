"""Wiring point of the referral service: settings, store, subscribers, HTTP."""

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from shared.contract.events import ConsentRecorded, ReferralAccepted, ReferralReceived, ReferralRejected, ReferralWithdrawn
from shared.memory import MemoryStorage
from shared.runtime import KringService
from shared.settings import KringSettings
from shared.store import utc_now

from . import handlers, routes
from .domain import Referral, reference_of
from .storage import REFERRALS

SERVICE = "referral"
DESCRIPTION = (
    "Intake of referrals from bureaus (AMQP command referral.submit on the intake exchange, "
    "answered on the replies exchange) and from referrers and families (HTTP), consent and "
    "withdrawal. The family's personal data stays here."
)


def create_app(
    settings: KringSettings | None = None, *, clock: Callable[[], datetime] = utc_now, storage: MemoryStorage | None = None
) -> FastAPI:
    settings = settings or KringSettings(service_name=SERVICE)
    service = KringService(settings, description=DESCRIPTION, storage=storage)
    referrals = service.aggregate_store(REFERRALS, Referral, clock=clock, alternate_key=reference_of)
    handlers.register(service, referrals, clock)
    service.documents(ReferralReceived, ConsentRecorded, ReferralWithdrawn, ReferralAccepted, ReferralRejected)
    return service.http_app(routes.router(referrals, settings, clock))
