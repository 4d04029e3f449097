"""Family tokens stop working when the family's access to its case is revoked.

A family token (shared.auth, role family, claim `case`) is signed once and lives for weeks;
it cannot be recalled. So every service that accepts family tokens keeps, per case, the time
the family's access was revoked, learnt from events it consumes anyway, and refuses a family
token for that case issued (`iat`) before that time (shared.auth.authorised asks
`app.state.family_access`; a service admitting family tokens without it refuses them all).

Revoking events: REVOKING below; adding one is one line. The erasure of a case's personal
data (`PersonalDataErased`) revokes too, but each service that takes family tokens (referral,
plans) already records the erasure in its own state, so it passes that as `own_record`
instead of a second subscriber to the same event. A service that already handles that event for its own
reasons (one queue per service and event) calls `FamilyAccess.revoked_by(envelope)` from its
handler and passes the event in `handled_elsewhere`, instead of the subscriber made here.

The revocation is as fast as the event: referral also refuses at once from its own state
(services/referral/routes.py), the others within the event's delivery (milliseconds; longer
only while the broker is away, and then the withdrawal is retried until it arrives).
"""

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel

from shared.auth import Principal, Role
from shared.contract.envelope import Envelope
from shared.contract.events import CaseEvent, ReferralWithdrawn
from shared.domain import Change
from shared.store import AggregateStore

COLLECTION = "family_access"
# The services that take family tokens (the family reads its case and its plan there).
FAMILY_SERVICES = frozenset({"referral", "plans"})
# Events after which a case's family tokens no longer work.
REVOKING: tuple[type[CaseEvent], ...] = (
    ReferralWithdrawn,
)


class Revocation(BaseModel):
    """The case's family tokens issued before `revoked_at` are refused."""

    revoked_at: AwareDatetime


def revoked(current: Revocation | None, at: datetime) -> Change[Revocation] | None:
    """Keep the latest revocation: every token issued before it is refused."""
    if current is not None and current.revoked_at >= at:
        return None
    return Change(Revocation(revoked_at=at))


def admitted(revocation: Revocation | None, issued_at: datetime | None) -> bool:
    """May a family token issued at `issued_at` still be used for the case?"""
    if revocation is None:
        return True
    return issued_at is not None and issued_at > revocation.revoked_at


OwnRecord = Callable[[str], Awaitable[datetime | None]]


class FamilyAccess:
    """One service's record of revoked family access, per case. `own_record`: what the
    service knows itself, sooner than the event (referral: the withdrawal it just wrote)."""

    def __init__(self, store: AggregateStore[Revocation], own_record: OwnRecord | None = None) -> None:
        self.store = store
        self.own_record = own_record

    async def admits(self, principal: Principal) -> bool:
        if principal.role is not Role.FAMILY:
            return True
        if not principal.case_id:
            return False
        if not admitted(await self.store.get(principal.case_id), principal.issued_at):
            return False
        own = await self.own_record(principal.case_id) if self.own_record else None
        return own is None or admitted(Revocation(revoked_at=own), principal.issued_at)

    async def revoked_by(self, envelope: Envelope[Any]) -> None:
        """Record that `envelope` (a REVOKING event) ended the case's family access at its time."""
        await self.store.mutate(envelope.subject, lambda current: revoked(current, envelope.time), cause=envelope)

    def subscribe(self, service: Any, handled_elsewhere: Iterable[type[CaseEvent]] = ()) -> None:
        """Consume every REVOKING event in `service` (a shared.runtime.KringService), except
        those the service's own handlers already take and pass on to `revoked_by`."""
        skipped = set(handled_elsewhere)
        for event in REVOKING:
            if event not in skipped:
                service.on(event)(self._handler(event))

    def _handler(self, event: type[CaseEvent]) -> Any:
        async def on_revoking_event(envelope: Envelope[event]) -> None:  # type: ignore[valid-type]
            await self.revoked_by(envelope)

        on_revoking_event.__name__ = f"revoke_family_access_on_{event.__name__}"
        return on_revoking_event


def family_access(service: Any, own_record: OwnRecord | None = None) -> FamilyAccess:
    """The service's FamilyAccess on its own collection, consuming the REVOKING events; wire
    `app.state.family_access` to it."""
    access = FamilyAccess(service.aggregate_store(COLLECTION, Revocation), own_record)
    access.subscribe(service)
    return access
