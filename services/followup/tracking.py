"""The follow-up service's application services: the due sweep, the intervals per funder,
the funder report. Lists are queries over the follow-ups' current state (indexed on MongoDB;
the local mongo-java-server scans them, about 6 µs a document: fine for a sweep, never per
message)."""

from collections.abc import Callable
from datetime import datetime, timedelta

from shared.logging import get_logger
from shared.standards import StandardsSettings
from shared.store import AggregateStore

from . import domain
from .domain import Facts, FollowUp, Interval, Report

log = get_logger("kring.followup")

# What the service queries (state paths): each gets an index on MongoDB.
QUERIED = (("stage",), ("facts.funder_id", "facts.province", "facts.period"))


class Tracking:
    def __init__(
        self,
        followups: AggregateStore[FollowUp],
        intervals: AggregateStore[Interval],
        clock: Callable[[], datetime],
        default_interval: timedelta,
        standards: StandardsSettings | None = None,
    ) -> None:
        self.followups = followups
        self.intervals = intervals
        self.clock = clock
        self.default_interval = default_interval
        self.standards = standards or StandardsSettings()

    async def interval_for(self, facts: Facts) -> timedelta:
        for key in (f"{facts.funder_id}:{facts.province}", facts.funder_id):
            if (interval := await self.intervals.get(key)) is not None:
                return timedelta(days=interval.days)
        return self.default_interval

    async def fire_due(self) -> int:
        """Emit FollowUpDue for every check whose time has come, exactly once per due
        date, whichever replica sweeps (and on start, for what came due while down)."""
        now = self.clock()
        fired = 0
        for case_id, followup in await self.followups.find({"stage": domain.Stage.SCHEDULED.value}):
            if followup.due_at is not None and followup.due_at <= now:
                fired += len((await self.followups.mutate(case_id, lambda f: domain.fire(f, now))).events)
        if fired:
            log.info("follow-ups due", fired=fired)
        return fired

    async def late(self) -> list[tuple[str, FollowUp]]:
        now = self.clock()
        return [(case_id, f) for case_id, f in await self.followups.find({"stage": domain.Stage.DUE.value}) if domain.late(f, now)]

    async def report(self, funder_id: str | None, province: str | None, period: str | None) -> Report:
        return await report_of(self.followups, funder_id, province, period, self.standards)


async def report_of(
    followups: AggregateStore[FollowUp], funder_id: str | None, province: str | None, period: str | None,
    standards: StandardsSettings | None = None,
) -> Report:  # fmt: skip
    """The report over every case of this funder, province and period (None: all), the
    service standards against each funder's targets (KRING_STANDARD_*)."""
    standards = standards or StandardsSettings()
    where = {path: value for path, value in (("facts.funder_id", funder_id), ("facts.province", province), ("facts.period", period)) if value}
    found = [followup for _, followup in await followups.find(where)]
    return domain.report(domain.counts_of(found), funder_id, province, period, standards.targets_for)
