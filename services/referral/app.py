"""Wiring point of the referral service: settings, store, subscribers, HTTP."""

from collections.abc import Callable
from datetime import datetime, timedelta

from fastapi import FastAPI

from shared.contract.events import (
    ConsentRecorded,
    PersonalDataErased,
    ReferralAccepted,
    ReferralReceived,
    ReferralRejected,
    ReferralWithdrawn,
)
from shared.family_access import family_access
from shared.memory import MemoryStorage
from shared.runtime import KringService
from shared.settings import KringSettings
from shared.store import utc_now

from . import family_codes, handlers, routes
from .domain import Referral, reference_of
from .retention import QUERIED, Retention
from .storage import REFERRALS

SERVICE = "referral"
FAMILY_CODES = "family_codes"  # one-time codes for family access, by their key; secrets only as hashes
DESCRIPTION = (
    "Intake of referrals from bureaus (AMQP command referral.submit on the intake exchange, "
    "answered on the replies exchange) and from referrers and families (HTTP), consent and "
    "withdrawal, retention and erasure (PersonalDataErased). The family's personal data stays here."
)


def create_app(
    settings: KringSettings | None = None, *, clock: Callable[[], datetime] = utc_now, storage: MemoryStorage | None = None
) -> FastAPI:
    settings = settings or KringSettings(service_name=SERVICE)
    service = KringService(settings, description=DESCRIPTION, storage=storage, clock=clock)
    referrals = service.aggregate_store(REFERRALS, Referral, clock=clock, alternate_key=reference_of, queried=QUERIED)
    codes = service.aggregate_store(FAMILY_CODES, family_codes.FamilyCode, clock=clock)
    handlers.register(service, referrals, clock)
    retention = Retention(referrals, clock, timedelta(days=settings.retention_days))
    service.every(settings.retention_sweep_seconds, retention.sweep)
    service.documents(ReferralReceived, ConsentRecorded, ReferralWithdrawn, PersonalDataErased, ReferralAccepted, ReferralRejected)
    app = service.http_app(routes.router(referrals, codes, settings, clock))
    app.state.retention = retention

    async def revoked_at(case_id: str) -> datetime | None:  # known here before the event is back
        referral = await referrals.get(case_id)
        if referral is None:
            return None
        return referral.erasure.erased_at if referral.erasure else referral.withdrawn_at

    app.state.family_access = family_access(service, revoked_at)
    return app
