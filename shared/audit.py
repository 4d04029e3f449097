"""The audit log: who looked at or changed which case, when, allowed or refused and why —
never a value (NEN 7513: logging access to care records).

Each service appends to its own collection `audit` (in memory: `MemoryStorage.audit`); the
code only ever inserts and reads it, and in production the service's database user may do
no more (docs/SECURITY.md). An entry:

    {_id, at, service, subject, role, organisation_id, operation, case_id, outcome, reason, detail, status}

- `operation`: the route as declared (`GET /cases/{case_id}/contact`, never the path as
  sent) or an operations command (`kring-ops erase`);
- `case_id`: the case touched or named; a path parameter that is no case id (someone typed
  a name into the URL) is kept as `(invalid)`, not as typed;
- `outcome`: allowed, refused (4xx) or failed (5xx); `reason` a code (forbidden, not_found,
  unauthenticated, role_not_admitted, ...), `detail` Kring's own refusal text (a fixed
  sentence, e.g. "this case is not yours"), never anything the caller sent.

Where entries come from, without code in any route: `AuditTrail` (shared.http) opens an
`Access` for every request; `shared.auth.authorised` notes the caller, `shared.access`'s
read_owned/change_owned note the case, the error mapping notes why a request was refused.
When the answer starts, the request is recorded if it touched or named a case or was
refused (401/403) — once, BEFORE the answer leaves: if the entry cannot be written, the
caller gets 503 instead of the data (for a change that was already stored, the retry is
recorded; the failure is logged with route and case id).
"""

import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import AwareDatetime, BaseModel
from pymongo.asynchronous.collection import AsyncCollection

from .mongo import IndexSpec

if TYPE_CHECKING:
    from fastapi import APIRouter

    from .auth import Principal

AUDIT = "audit"
CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{7,63}$")  # shared.contract.vocabulary.CaseId
INVALID = "(invalid)"


class Outcome(StrEnum):
    ALLOWED = "allowed"
    REFUSED = "refused"
    FAILED = "failed"


REASONS = {
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    409: "rule_violation",
    422: "invalid_input",
    429: "rate_limited",
}


class AuditEntry(BaseModel):
    id: str
    at: AwareDatetime
    service: str
    subject: str | None = None  # None: no valid token
    role: str | None = None
    organisation_id: str | None = None
    operation: str
    case_id: str | None = None
    outcome: Outcome
    reason: str | None = None
    detail: str | None = None
    status: int | None = None


def case_id_of(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) and CASE_ID.match(value) else INVALID


# --- what one request did, noted where it happens ---------------------------------------


@dataclass
class Access:
    caller: "Principal | None" = None
    case_id: str | None = None
    touched: bool = False  # an owned aggregate was read or changed
    reason: str | None = None
    detail: str | None = None


_current: ContextVar[Access | None] = ContextVar("kring_audit_access", default=None)


def open_access() -> tuple[Access, Any]:
    access = Access()
    return access, _current.set(access)


def close_access(token: Any) -> None:
    _current.reset(token)


def note_caller(caller: "Principal") -> None:
    if (access := _current.get()) is not None:
        access.caller = caller


def note_access(key: str) -> None:
    """An owned aggregate (a case) is read or changed (shared.access)."""
    if (access := _current.get()) is not None:
        access.touched = True
        access.case_id = case_id_of(key)


def note_refusal(reason: str, detail: str | None = None) -> None:
    """Why the request is refused: a code, and Kring's own fixed wording (never a value)."""
    if (access := _current.get()) is not None:
        access.reason = reason
        access.detail = detail[:200] if detail else None


def entry_for(service: str, scope: dict[str, Any], access: Access, status: int, now: datetime) -> AuditEntry | None:
    """The entry of a finished request; None if it neither touched nor named a case and
    was not refused as unauthenticated or forbidden (health checks, lists, the form)."""
    named = case_id_of((scope.get("path_params") or {}).get("case_id"))
    case_id = access.case_id or named
    if not (access.touched or case_id or status in (401, 403)):
        return None
    route = scope.get("route")
    operation = f"{scope.get('method', '?')} {getattr(route, 'path', '(no route)')}"
    outcome = Outcome.ALLOWED if status < 400 else Outcome.REFUSED if status < 500 else Outcome.FAILED
    caller = access.caller
    return AuditEntry(
        id=uuid.uuid4().hex, at=now, service=service,
        subject=caller.subject if caller else None, role=caller.role.value if caller else None,
        organisation_id=caller.organisation_id if caller else None,
        operation=operation, case_id=case_id, outcome=outcome,
        reason=None if outcome is Outcome.ALLOWED else access.reason or REASONS.get(status, "error"),
        detail=None if outcome is Outcome.ALLOWED else access.detail, status=status,
    )  # fmt: skip


# --- the log ------------------------------------------------------------------------------


class AuditLog:
    """Append-only: `record` and `entries`, nothing that changes or removes an entry."""

    def __init__(self, service: str, clock: Callable[[], datetime], *, collection: AsyncCollection | None = None, memory: list[dict[str, Any]] | None = None) -> None:
        assert (collection is None) != (memory is None)
        self.service = service
        self.clock = clock
        self.collection = collection
        self.memory = memory

    def indexes(self) -> list[IndexSpec]:
        return [IndexSpec(AUDIT, [("case_id", 1), ("at", 1)]), IndexSpec(AUDIT, [("subject", 1), ("at", 1)])]

    async def record(self, entry: AuditEntry) -> None:
        document = {"_id": entry.id, **entry.model_dump(mode="python", exclude={"id"})}
        if self.memory is not None:
            self.memory.append(document)
        else:
            assert self.collection is not None
            await self.collection.insert_one(document)

    async def record_operation(
        self, operation: str, *, subject: str, case_id: str | None, outcome: Outcome = Outcome.ALLOWED, reason: str | None = None
    ) -> AuditEntry:
        """An operations command's access (kring-ops), outside HTTP."""
        entry = AuditEntry(
            id=uuid.uuid4().hex, at=self.clock(), service=self.service, subject=subject, role="ops",
            operation=operation, case_id=case_id_of(case_id), outcome=outcome, reason=reason,
        )  # fmt: skip
        await self.record(entry)
        return entry

    async def entries(self, *, case_id: str | None = None, subject: str | None = None, limit: int = 1000) -> list[AuditEntry]:
        """The newest `limit` entries, oldest first."""
        where = {name: value for name, value in (("case_id", case_id), ("subject", subject)) if value is not None}
        if self.memory is not None:
            found = sorted((d for d in self.memory if all(d.get(k) == v for k, v in where.items())), key=lambda d: d["at"])[-limit:]
        else:
            assert self.collection is not None  # the newest `limit`, by the (case_id|subject, at) index
            found = (await self.collection.find(where).sort([("at", -1), ("_id", -1)]).limit(limit).to_list())[::-1]
        return [AuditEntry.model_validate({**d, "id": d["_id"]}) for d in found]


# --- who may read it -------------------------------------------------------------------


class AccessRecord(BaseModel):
    """What a family is told of one access to its case: who (role, organisation), when, what."""

    at: AwareDatetime
    service: str
    role: str | None
    organisation_id: str | None
    operation: str


def audit_router(log: AuditLog, *, family: bool) -> "APIRouter":
    """`family`: the service takes family tokens (shared.family_access), so the family reads its
    case's access log here; elsewhere only operations does."""
    from fastapi import APIRouter, Depends, Query

    from .access import ANY_CASE, OWN_CASE, Scope
    from .auth import Principal, Role, authorised
    from .errors import Forbidden

    api = APIRouter(tags=["audit"])
    readers = authorised(Role.FAMILY, Role.OPS, owned=Scope({Role.FAMILY: OWN_CASE, Role.OPS: ANY_CASE})) if family else authorised(Role.OPS)

    @api.get("/audit", response_model=list[AuditEntry])
    async def audit(
        case_id: str | None = Query(default=None, max_length=64),
        subject: str | None = Query(default=None, max_length=128),
        limit: int = Query(default=1000, ge=1, le=10_000),
        caller: Principal = Depends(authorised(Role.OPS)),
    ) -> list[AuditEntry]:
        """Operations: this service's audit entries, of one case or one subject (oldest first)."""
        return await log.entries(case_id=case_id, subject=subject, limit=limit)

    @api.get("/cases/{case_id}/access-log", response_model=list[AccessRecord])
    async def access_log(
        case_id: str, caller: Principal = Depends(readers)
    ) -> list[AccessRecord]:
        """Who read or changed this case here, and when (Wie heeft uw gegevens ingezien): for the
        family of the case (its own reads left out; where the service takes family tokens) and
        operations."""
        if caller.role is Role.FAMILY and caller.case_id != case_id:
            raise Forbidden("this case is not yours")
        return [
            AccessRecord(at=e.at, service=e.service, role=e.role, organisation_id=e.organisation_id, operation=e.operation)
            for e in await log.entries(case_id=case_id)
            if e.outcome is Outcome.ALLOWED and e.role != Role.FAMILY.value
        ]

    return api
