"""Wiring point of the follow-up service: stores, subscribers, the due-check sweep, HTTP."""

from collections.abc import Callable
from datetime import datetime, timedelta

from fastapi import FastAPI
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contract.envelope import Envelope
from shared.contract.events import FollowUpCompleted, FollowUpDue, OutcomeRecorded
from shared.outbox import utc_now
from shared.runtime import KringService
from shared.settings import KringSettings

from . import handlers, partner, routes
from .domain import DEFAULT_INTERVAL_DAYS, FollowUp, Interval
from .tracking import CONTRIBUTIONS, Tracking, contribution_indexes

SERVICE = "followup"
DESCRIPTION = (
    "The three-month follow-up check, outcomes, and what funders see: OutcomeRecorded on the "
    "partner exchange (routing key outcome.recorded.<funder>.<province>.<municipality|none>), "
    "no personal data; reports per funder, province and period."
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
) -> FastAPI:
    settings = settings or KringSettings(service_name=SERVICE)
    options = FollowupOptions()
    sweep_seconds = sweep_seconds or options.sweep_seconds
    default_interval = default_interval or timedelta(days=options.interval_days)
    service = KringService(settings, description=DESCRIPTION)
    followups = service.aggregate_store("followups", FollowUp)
    intervals = service.aggregate_store("intervals", Interval)
    followups.clock = intervals.clock = clock
    service.indexes += contribution_indexes()
    tracking = Tracking(followups, service.db[CONTRIBUTIONS], intervals, clock=clock, default_interval=default_interval)
    handlers.register(service, tracking)
    partner_log = service.db[partner.PARTNER_LOG]

    @service.on(OutcomeRecorded)
    async def on_outcome_recorded(envelope: Envelope[OutcomeRecorded]) -> None:
        await partner.keep(partner_log, envelope)

    service.every(sweep_seconds, tracking.fire_due)
    service.every(settings.key_list_completion_seconds, tracking.reconcile, spread=True)
    service.documents(FollowUpDue, FollowUpCompleted, OutcomeRecorded)
    app = service.http_app(routes.router(tracking, partner_log, service.publisher, clock))
    app.state.tracking = tracking
    return app
