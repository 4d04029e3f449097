"""Finding each case a coordinator, without ever over-filling a caseload, with any number of
replicas: a process of steps, each one write of one aggregate that announces the next.

1. A case that needs a coordinator announces CoordinatorWanted (in the write that makes it
   need one: the referral, the consent, a second meeting without a coordinator, a follow-up
   conference: that one ranks the previous conference's coordinator first).
2. `try_assign` ranks the coordinators (domain.ranked) and reserves a place in the best
   one's caseload: the coordinator's compare-and-set lets one of two racing replicas through,
   the other finds the caseload full and tries the next. The reservation announces
   PlaceReserved. If nobody can take the case, the case records why it waits instead.
3. PlaceReserved assigns the case (CoordinatorAssigned); a case that no longer wants that
   coordinator (withdrawn meanwhile, or given a place elsewhere by a racing replica) asks for
   the place back instead: PlaceReleaseRequested.
4. PlaceReleaseRequested gives the place back (also when a case ends), announcing PlaceFreed.
5. PlaceFreed offers the place to the longest waiting case that coordinator can take.
A crash between two steps leaves the next step's announcement in the outbox, so the process
always goes on; every step is idempotent. Every `SWEEP_SECONDS` the waiting cases are tried
again too: a coordinator back from unavailability announces nothing.

The lists (coordinators, waiting cases) are queries over current state: the coordinators are
few; the waiting cases are found by their stage (an index on MongoDB; a scan of the cases on
the local mongo-java-server, about 6 µs a case: per freed place, not per message).
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.contract.envelope import Envelope
from shared.errors import NotFound, RuleViolation
from shared.logging import get_logger
from shared.store import AggregateStore

from . import domain
from .domain import Case, CaseloadFull, Coordinator, Stage

log = get_logger("kring.scheduling")

# What the service queries (state paths): each gets an index on MongoDB.
QUERIED = (("stage",), ("coordinator_id",), ("referral.funder_id",))


class Assignments:
    def __init__(self, cases: AggregateStore[Case], coordinators: AggregateStore[Coordinator], clock: Callable[[], datetime]) -> None:
        self.cases = cases
        self.coordinators = coordinators
        self.clock = clock

    async def all_coordinators(self) -> list[Coordinator]:
        return [coordinator for _, coordinator in await self.coordinators.find()]

    async def waiting(self) -> list[Case]:
        """Cases with consent that no coordinator took yet, longest waiting first."""
        found = [case for _, case in await self.cases.find({"stage": Stage.UNASSIGNED.value})]
        return sorted(found, key=lambda case: (case.waiting_since, case.case_id))

    async def try_assign(self, case_id: str, cause: Envelope[Any] | None = None) -> bool:
        """Step 2: reserve a place for the case with the best coordinator who can take it, or
        record why it waits. Whether a place was reserved."""
        case = await self.cases.get(case_id)
        if case is None or not case.needs_coordinator:
            return False
        coordinators = await self.all_coordinators()
        if any(case_id in coordinator.active_cases for coordinator in coordinators):
            return False  # reserved already: its PlaceReserved is on the way
        candidates, reason = domain.ranked(coordinators, case, self.clock().date())
        for candidate in candidates:
            try:
                await self.coordinators.mutate(candidate.coordinator_id, lambda c: domain.reserve(c, case_id), cause=cause)
            except CaseloadFull:
                reason = domain.FILLED_MEANWHILE
                continue
            return True
        await self.cases.mutate(case_id, lambda c: domain.waiting(c, reason or domain.FILLED_MEANWHILE), cause=cause)
        log.info("case waits for a coordinator", case_id=case_id, reason=reason)
        return False

    async def offer_place(self, coordinator_id: str, cause: Envelope[Any] | None = None) -> bool:
        """Step 5: the coordinator's free place to the longest waiting case they can take."""
        coordinator = await self.coordinators.get(coordinator_id)
        if coordinator is None or not coordinator.has_room():
            return False
        today = self.clock().date()
        for case in await self.waiting():
            # a case whose first attempt is on its way is ranked by that attempt, not taken here
            if case.found_waiting and domain.eligible(coordinator, case, today) is None:
                try:
                    await self.coordinators.mutate(coordinator_id, lambda c: domain.reserve(c, case.case_id), cause=cause)
                except CaseloadFull:
                    return False  # taken meanwhile
                return True
        return False

    async def sweep(self) -> int:
        """Try every waiting case again, longest waiting first, while anyone has room."""
        assigned = 0
        for case in await self.waiting():
            if not any(coordinator.has_room() for coordinator in await self.all_coordinators()):
                break
            assigned += await self.try_assign(case.case_id)
        return assigned

    async def reassign(self, case_id: str, coordinator_id: str) -> Case:
        """Operations moves a case to another coordinator (eligibility still applies): a place
        is reserved with them, then the case takes it here and now; its PlaceReserved would
        do the same later, so a request cut off in between is completed anyway."""
        case = await self.cases.get(case_id)
        if case is None:
            raise NotFound("no such case")
        if not case.open:
            raise RuleViolation(f"the case is {case.stage}")
        coordinator = await self.coordinators.get(coordinator_id)
        if coordinator is None:
            raise NotFound("no such coordinator")
        if (why_not := domain.eligible(coordinator, case, self.clock().date())) is not None:
            raise RuleViolation(f"{coordinator_id} cannot take this case: {why_not}")
        await self.coordinators.mutate(coordinator_id, lambda c: domain.reserve(c, case_id, manual=True))
        now = self.clock()
        mutation = await self.cases.mutate(case_id, lambda c: domain.place_reserved(c, coordinator_id, now, manual=True))
        assert mutation.state is not None
        return mutation.state
