"""The follow-up service's two kinds of state and how events move them: one follow-up per
case, and what each event contributes to the funder report (funder, province, period).
Both are deduplicated by the event's id, so a redelivery counts nothing twice."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from shared.contract.envelope import Envelope
from shared.keylist import KeyList
from shared.logging import get_logger
from shared.messaging.consumer import TransientFault
from shared.mongo import IndexSpec, insert_once
from shared.store import AggregateStore, Change

from . import domain
from .domain import Facts, FollowUp, Interval, Report, ReportSlice

CONTRIBUTIONS = "report_contributions"

log = get_logger("kring.followup")


class Tracking:
    def __init__(
        self,
        followups: AggregateStore[FollowUp],
        contributions: AsyncCollection,
        intervals: AggregateStore[Interval],
        clock: Callable[[], datetime],
        default_interval: timedelta,
    ) -> None:
        self.followups = followups
        self.contributions = contributions
        self.intervals = intervals
        self.clock = clock
        self.default_interval = default_interval
        # the cases whose check has a date: the due sweep reads them by _id, not by a query
        # over every follow-up version ever written (shared.keylist)
        self.scheduled = KeyList(followups.collection.database[f"{followups.collection.name}.scheduled"])

    async def facts(self, case_id: str) -> Facts:
        followup = await self.followups.get(case_id)
        if followup is None:  # the referral's event is on its way (another queue): retry
            raise TransientFault(f"no referral known yet for case {case_id}")
        return followup.facts

    async def count(self, envelope: Envelope[Any], contribution: ReportSlice | None) -> None:
        """Count an event in the funder report once, also when it comes back long after (a
        redrive): its contribution is stored under the event's id. No two events write the
        same document, so counting never waits for another writer.

        (It was a counter per funder, province and period, split over 16 shards, each version
        carrying the ids of the last 1,000 events it counted: by 2,000 cases every count
        wrote a 7 KB document, racing dozens of writers for the same 32 shards.)"""
        if contribution is not None:
            await insert_once(self.contributions, {"_id": envelope.id, **contribution.model_dump(mode="json", exclude_defaults=True)})

    async def report(self, funder_id: str | None, province: str | None, period: str | None) -> Report:
        return await report_of(self.contributions, funder_id, province, period)

    async def interval_for(self, facts: Facts) -> timedelta:
        for key in (f"{facts.funder_id}:{facts.province}", facts.funder_id):
            if (interval := await self.intervals.get(key)) is not None:
                return timedelta(days=interval.days)
        return self.default_interval

    async def schedule(self, case_id: str, decide: Callable[[FollowUp | None], Change[FollowUp] | None], cause: Envelope[Any]) -> None:
        """A change that may give the check a date: listed before, so the sweep cannot miss it."""
        await self.scheduled.add(case_id)
        await self.followups.mutate(case_id, decide, cause=cause)

    async def fire_due(self) -> int:
        """Emit FollowUpDue for every check whose time has come, exactly once per due
        date, whichever replica sweeps (and on start, for what came due while down)."""
        now = self.clock()
        fired = 0
        for case_id in await self.scheduled.keys():
            followup = await self.followups.get(case_id)
            if followup is None or followup.stage is domain.Stage.OPEN:
                continue  # listed just before its plan's acceptance is stored
            if followup.stage is not domain.Stage.SCHEDULED:
                await self.scheduled.remove(case_id)  # fired or closed: it never comes back
            elif followup.due_at is not None and followup.due_at <= now:
                mutation = await self.followups.mutate(case_id, lambda f: domain.fire(f, now))
                fired += len(mutation.events)
                if mutation.state is not None and mutation.state.stage is not domain.Stage.SCHEDULED:
                    await self.scheduled.remove(case_id)  # fired; one moved to a later date meanwhile stays
        if fired:
            log.info("follow-ups due", fired=fired)
        return fired

    async def reconcile(self) -> int:
        """Complete the list of scheduled checks from the store (one query); how many were missing."""
        query = {"state.stage": domain.Stage.SCHEDULED.value}
        missing = await self.scheduled.complete([key async for key, _ in self.followups.find_current(query)])
        if missing:
            log.warning("scheduled checks completed from the store", entries=missing)
        return missing


def contribution_indexes() -> list[IndexSpec]:
    return [IndexSpec(CONTRIBUTIONS, [("funder_id", 1), ("province", 1), ("period", 1)])]


async def report_of(contributions: AsyncCollection, funder_id: str | None, province: str | None, period: str | None) -> Report:
    """The report over every contribution of this funder, province and period (None: all)."""
    query = {field: value for field, value in (("funder_id", funder_id), ("province", province), ("period", period)) if value}
    counted = [ReportSlice.model_validate(document) async for document in contributions.find(query, {"_id": 0})]
    return domain.report(counted, funder_id, province, period)
