"""Wiring point of the follow-up service: stores, subscribers, the due-check sweep, HTTP."""

from collections.abc import Callable
from datetime import datetime, timedelta

from fastapi import FastAPI
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contract.events import FollowUpCompleted, FollowUpDue, OutcomeRecorded
from shared.memory import MemoryStorage
from shared.pseudonym import pseudonyms
from shared.runtime import KringService
from shared.settings import KringSettings
from shared.standards import StandardsSettings
from shared.store import utc_now

from . import handlers, partner, routes
from .domain import DEFAULT_INTERVAL_DAYS, FollowUp, Interval
from .tracking import QUERIED, Tracking

SERVICE = "followup"
DESCRIPTION = (
    "The three-month follow-up check, outcomes, and what funders see: OutcomeRecorded on the "
    "partner exchange (routing key outcome.recorded.<funder>.<province>.<municipality|none>), "
    "under the funder's own pseudonym of the case, never the case id, codes and counts only; "
    "reports per funder, province and period."
)


class FollowupOptions(BaseSettings):
    """KRING_FOLLOWUP_INTERVAL_DAYS (default 90; per funder/province over HTTP) and
    KRING_FOLLOWUP_SWEEP_SECONDS (how often due checks are looked for)."""

    model_config = SettingsConfigDict(env_prefix="KRING_FOLLOWUP_", extra="ignore")

    interval_days: float = Field(default=DEFAULT_INTERVAL_DAYS, gt=0)
    sweep_seconds: float = Field(default=60.0, gt=0)


def create_app(
    settings: KringSettings | None = None,
    *,
    clock: Callable[[], datetime] = utc_now,
    sweep_seconds: float | None = None,
    default_interval: timedelta | None = None,
    storage: MemoryStorage | None = None,
    standards: StandardsSettings | None = None,
) -> FastAPI:
    settings = settings or KringSettings(service_name=SERVICE)
    options = FollowupOptions()
    sweep_seconds = sweep_seconds or options.sweep_seconds
    default_interval = default_interval or timedelta(days=options.interval_days)
    service = KringService(settings, description=DESCRIPTION, storage=storage, clock=clock)
    followups = service.aggregate_store("followups", FollowUp, clock=clock, queried=QUERIED)
    intervals = service.aggregate_store("intervals", Interval, clock=clock)
    partner_log = service.aggregate_store(partner.PARTNER_LOG, partner.SentOutcome, clock=clock, queried=[("funder_id",)])
    tracking = Tracking(followups, intervals, clock=clock, default_interval=default_interval, standards=standards)
    handlers.register(service, followups, tracking.interval_for, partner_log)
    service.every(sweep_seconds, tracking.fire_due)
    service.gauge("kring_followup_checks_overdue", "Follow-up checks due and not done weeks after their date", tracking.late)
    service.documents(FollowUpDue, FollowUpCompleted, OutcomeRecorded)
    app = service.http_app(routes.router(tracking, partner_log, service.publisher, clock, pseudonyms(settings)))
    app.state.tracking = tracking
    return app
