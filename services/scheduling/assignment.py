"""Assigning coordinators without ever over-filling a caseload, with any number of replicas.

A place in a caseload is taken on the coordinator's aggregate first (`reserve`: the
insert-compare-and-set of shared.store lets one of two racing replicas through, the other
re-decides on the new caseload and moves on if it is full), then the case records the
assignment and announces it. A crash between the two leaves a reservation that the next
attempt for the case finds and completes; a case that was withdrawn meanwhile gives it back.

Assignment runs on every freed place, so it reads only by `_id`: the coordinators on the
roster and the cases on the waiting list (shared.keylist), each from its store. A query
over the stores' version chains grows with every case ever handled (FerretDB v1 answers
each by reading the whole collection: 9 s for 3,600 case versions in a 1,000-case fault
run). The lists are completed from the stores every hour (`reconcile`,
KRING_KEY_LIST_COMPLETION_SECONDS).
"""

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.contract.envelope import Envelope
from shared.keylist import KeyList
from shared.logging import get_logger
from shared.store import AggregateStore

from . import domain
from .domain import Case, CaseloadFull, Coordinator, Stage

log = get_logger("kring.scheduling")


class Assignments:
    def __init__(self, cases: AggregateStore[Case], coordinators: AggregateStore[Coordinator], clock: Callable[[], datetime]) -> None:
        self.cases = cases
        self.coordinators = coordinators
        self.clock = clock
        self._passing = asyncio.Lock()
        self._requested = 0  # requests for a pass of assign_waiting, numbered
        self._pass_started = 0  # the newest request the running or last pass started after
        self.roster = KeyList(coordinators.collection.database[f"{coordinators.collection.name}.roster"])
        self.waiting = KeyList(cases.collection.database[f"{cases.collection.name}.waiting"])

    async def enrol(self, coordinator_id: str) -> None:
        """Put a coordinator on the roster; before the registration, so none is ever missed."""
        await self.roster.add(coordinator_id)

    async def all_coordinators(self) -> list[Coordinator]:
        found = [await self.coordinators.get(coordinator_id) for coordinator_id in await self.roster.keys()]
        return [coordinator for coordinator in found if coordinator is not None]  # a refused registration

    async def try_assign(self, case_id: str, cause: Envelope[Any] | None = None, coordinators: list[Coordinator] | None = None) -> Case | None:
        """`coordinators`: caseloads just read, if the caller has them (reserving checks again)."""
        case = await self.cases.get(case_id)
        if case is None or not case.needs_coordinator:
            return case
        coordinators = coordinators if coordinators is not None else await self.all_coordinators()
        holder = next((c for c in coordinators if case_id in c.active_cases), None)
        candidates, reason = ([holder], "") if holder else domain.ranked(coordinators, case, self.clock().date())
        for coordinator in candidates:
            try:
                await self.coordinators.mutate(coordinator.coordinator_id, lambda c: domain.reserve(c, case_id))
            except CaseloadFull:
                reason = "no eligible coordinator (caseload full)"
                continue
            assigned = await self._record(case_id, coordinator.coordinator_id, cause)
            await self.waiting.remove(case_id)
            return assigned
        await self.waiting.add(case_id)  # before it is marked waiting: a pass will try it again
        await self.cases.mutate(case_id, lambda c: domain.waiting(c, reason or "no eligible coordinator"))
        log.info("case waits for a coordinator", case_id=case_id, reason=reason)
        return await self.cases.get(case_id)

    async def _record(self, case_id: str, coordinator_id: str, cause: Envelope[Any] | None, *, manual: bool = False) -> Case | None:
        now = self.clock()
        mutation = await self.cases.mutate(
            case_id,
            lambda c: domain.assigned(c, coordinator_id, now, manual=manual),
            cause=cause,
            dedup_id=f"{cause.id}:assign" if cause else None,
        )
        case = mutation.state
        if case is None or case.coordinator_id != coordinator_id or not case.open:
            await self.release(case_id, coordinator_id)  # withdrawn or assigned elsewhere meanwhile
        return case

    async def reassign(self, case_id: str, coordinator_id: str) -> Case:
        """Operations moves a case to another coordinator (eligibility still applies)."""
        case = await self.cases.get(case_id)
        if case is None:
            raise LookupError("no such case")
        if not case.open:
            raise domain.RuleViolation(f"the case is {case.stage}")
        coordinator = await self.coordinators.get(coordinator_id)
        if coordinator is None:
            raise LookupError("no such coordinator")
        why_not = domain.eligible(coordinator, case, self.clock().date())
        if why_not is not None:
            raise domain.RuleViolation(f"{coordinator_id} cannot take this case: {why_not}")
        try:
            await self.coordinators.mutate(coordinator_id, lambda c: domain.reserve(c, case_id))
        except CaseloadFull:
            raise domain.RuleViolation(f"{coordinator_id}'s caseload is full") from None
        previous = case.coordinator_id
        updated = await self._record(case_id, coordinator_id, None, manual=True)
        if previous and previous != coordinator_id:
            await self.release(case_id, previous)
        assert updated is not None
        return updated

    async def release(self, case_id: str, coordinator_id: str | None = None) -> None:
        """Give back the place `case_id` holds (in every caseload, if no coordinator is named)."""
        holders = [coordinator_id] if coordinator_id else [
            c.coordinator_id for c in await self.all_coordinators() if case_id in c.active_cases
        ]  # fmt: skip
        for holder in holders:
            await self.coordinators.mutate(holder, lambda c: domain.release(c, case_id))

    async def release_ended(self) -> int:
        """Give back places still held by cases that have ended. A step that ends a case and
        then frees its place can be cut off in between (a crash, a dropped database connection
        under an HTTP request that is not retried); nothing else would ever free that place."""
        holders: dict[str, list[str]] = {}
        for coordinator in await self.all_coordinators():
            for case_id in coordinator.active_cases:
                holders.setdefault(case_id, []).append(coordinator.coordinator_id)
        released = 0
        for case_id in sorted(holders):
            case = await self.cases.get(case_id)
            if case is None or case.stage not in domain.ENDED:
                continue
            for holder in holders[case_id]:
                await self.release(case_id, holder)
            log.warning("released the place of an ended case", case_id=case_id, stage=case.stage.value)
            released += 1
        return released

    async def reconcile(self) -> int:
        """Put every coordinator on the roster and every waiting case on the waiting list,
        from the stores (a scan of each); returns how many entries were missing."""
        missing = await self.roster.complete([key async for key, _ in self.coordinators.find_current({})])
        missing += await self.waiting.complete([key async for key, _ in self.cases.find_current({"state.stage": Stage.UNASSIGNED.value})])
        if missing:
            log.warning("roster or waiting list completed from the stores", entries=missing)
        return missing

    async def sweep(self) -> None:
        await self.release_ended()
        await self.assign_waiting()

    async def assign_waiting(self) -> int:
        """Try again for the cases waiting for a coordinator: none is forgotten. Every freed
        place asks for this, often many at once; one pass at a time per process serves them
        all (a request waits for a pass that starts after it), so a burst of settled plans
        costs two passes, not one pass per plan."""
        self._requested += 1
        request = self._requested
        async with self._passing:
            if self._pass_started >= request:
                return 0  # a pass that began after this request has run
            covered_before, self._pass_started = self._pass_started, self._requested
            try:
                return await self._assign_waiting_pass()
            except BaseException:
                self._pass_started = covered_before  # the requests it covered run again
                raise

    async def _assign_waiting_pass(self) -> int:
        """Longest waiting first. A case goes to the store only if a coordinator with room
        could take it: under load many cases wait, and trying one reads every caseload."""
        coordinators = await self.all_coordinators()
        if not any(coordinator.has_room() for coordinator in coordinators):
            return 0
        waiting = []
        for case_id in await self.waiting.keys():
            case = await self.cases.get(case_id)
            if case is None or not case.needs_coordinator:
                await self.waiting.remove(case_id)  # assigned or ended meanwhile
            else:
                waiting.append(case)
        waiting.sort(key=lambda case: (case.referral.received_at, case.case_id))
        today = self.clock().date()
        assigned = 0
        for case in waiting:
            candidates, _ = domain.ranked(coordinators, case, today)
            if not candidates:
                continue
            assignment = await self.try_assign(case.case_id, coordinators=coordinators)
            if assignment and assignment.coordinator_id:
                assigned += 1
                coordinators = await self.all_coordinators()
                if not any(coordinator.has_room() for coordinator in coordinators):
                    break
        return assigned

