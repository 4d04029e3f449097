"""The follow-up service's two kinds of state and how events move them: one follow-up per
case, and the report slices (funder, province, period) counted as events arrive. Every
update is deduplicated by the event's id, so a redelivery counts nothing twice."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from shared.contract.envelope import Envelope
from shared.keylist import KeyList
from shared.logging import get_logger
from shared.messaging.consumer import TransientFault
from shared.store import AggregateStore, Change

from . import domain
from .domain import Facts, FollowUp, Interval, ReportSlice

log = get_logger("kring.followup")


class Tracking:
    def __init__(
        self,
        followups: AggregateStore[FollowUp],
        slices: AggregateStore[ReportSlice],
        intervals: AggregateStore[Interval],
        clock: Callable[[], datetime],
        default_interval: timedelta,
    ) -> None:
        self.followups = followups
        self.slices = slices
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

    async def count(self, facts: Facts, envelope: Envelope[Any], decide: Callable[[ReportSlice | None], Change[ReportSlice] | None]) -> None:
        """Count an event in the report once, also when it comes back long after (a redrive).
        A shard remembers only its last MAX_APPLIED event ids; the case remembers all of its
        own (a case has a few dozen), so: skip what the case applied, count (deduplicated by
        the shard for quick redeliveries), and only then let the case record it (callers
        mutate the case with cause=envelope after counting)."""
        if await self.followups.has_applied(envelope.subject, envelope.id):
            return
        await self.slices.mutate(facts.slice_key(envelope.subject), decide, dedup_id=envelope.id)

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
