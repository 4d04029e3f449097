"""Wiring point of the referral service: settings, stores, subscribers, HTTP."""

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from shared.contract.events import ConsentRecorded, ReferralAccepted, ReferralReceived, ReferralRejected, ReferralWithdrawn
from shared.mongo import IndexSpec
from shared.outbox import utc_now
from shared.runtime import KringService
from shared.settings import KringSettings

from . import handlers, routes
from .domain import Referral
from .storage import REFERENCES, REFERRALS, Referrals

SERVICE = "referral"
DESCRIPTION = (
    "Intake of referrals from bureaus (AMQP command referral.submit on the intake exchange, "
    "answered on the replies exchange) and from referrers and families (HTTP), consent and "
    "withdrawal. The family's personal data stays here."
)


def create_app(settings: KringSettings | None = None, *, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    settings = settings or KringSettings(service_name=SERVICE)
    service = KringService(settings, description=DESCRIPTION)
    store = service.aggregate_store(REFERRALS, Referral)
    store.clock = clock
    service.indexes.append(IndexSpec(REFERENCES, [("case_id", 1)]))
    referrals = Referrals(store, service.db[REFERENCES], clock)
    handlers.register(service, referrals, clock)
    service.documents(ReferralReceived, ConsentRecorded, ReferralWithdrawn, ReferralAccepted, ReferralRejected)
    return service.http_app(routes.router(referrals, settings, clock))
