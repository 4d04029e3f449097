"""Coordinators, assignment and the road to the conference date. Pure rules, no I/O.

A coordinator is an independent citizen, never a professional care provider, and never
tied to the organisation that referred the family. Assignment picks, among the eligible
(region, the family's language, room in the caseload, available today, no tie to the
referrer), the one matching most of the family's stated preferences with the lowest
relative caseload.
"""

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, PositiveInt, model_validator

from shared.contract.events import (
    ConferenceCancelled,
    ConferenceHeld,
    ConferenceRescheduled,
    ConferenceScheduled,
    CoordinatorAssigned,
    CoordinatorWanted,
    Event,
    PlaceFreed,
    PlaceReleaseRequested,
    PlaceReserved,
    ReferralReceived,
)
from shared.contract.vocabulary import (
    CancellationReason,
    ConsentState,
    CoordinatorPreferences,
    Identifier,
    LanguageCode,
    Province,
    Region,
    RoleCounts,
)
from shared.domain import Change, Strict
from shared.errors import NotFound, RuleViolation

SIXTY_DAYS = 60
REFERENCE_SHARE_WITHIN_60_DAYS = 0.65  # the Netherlands (DOMAIN.md)
AT_RISK_AFTER_DAYS = 45


# --- coordinators ---------------------------------------------------------------------


class Unavailable(Strict):
    starts: date
    ends: date

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.ends < self.starts:
            raise ValueError("ends must not be before starts")
        return self


class CoordinatorProfile(Strict):
    """What a coordinator states about themselves; gender and culture only if they choose."""

    provinces: list[Province] = Field(min_length=1)
    languages: list[LanguageCode] = Field(min_length=1)
    gender: str | None = Field(default=None, max_length=40)
    cultures: list[str] = Field(default=[], max_length=5)
    max_cases: PositiveInt = Field(le=30)
    tied_organisations: list[Identifier] = Field(default=[], description="organisations they work or worked for")
    unavailable: list[Unavailable] = []
    professional_care_provider: bool = Field(
        description="works as a professional care provider: then they cannot be a coordinator"
    )

    @model_validator(mode="after")
    def _independent(self) -> Self:
        if self.professional_care_provider:
            raise ValueError("a professional care provider cannot be registered as coordinator (independence)")
        return self


class Coordinator(BaseModel):
    coordinator_id: Identifier
    profile: CoordinatorProfile
    active_cases: list[str] = []

    @property
    def load(self) -> float:
        return len(self.active_cases) / self.profile.max_cases

    def has_room(self) -> bool:
        return len(self.active_cases) < self.profile.max_cases

    def available_on(self, day: date) -> bool:
        return not any(period.starts <= day <= period.ends for period in self.profile.unavailable)


def register(coordinator: Coordinator | None, coordinator_id: str, profile: CoordinatorProfile) -> Change[Coordinator]:
    active = coordinator.active_cases if coordinator else []
    registered = Coordinator(coordinator_id=coordinator_id, profile=profile, active_cases=active)
    return Change(registered, [PlaceFreed(coordinator_id=coordinator_id)] if registered.has_room() else [])


class CaseloadFull(RuleViolation):
    """The coordinator's caseload is full: choose another."""


def reserve(coordinator: Coordinator | None, case_id: str, *, manual: bool = False) -> Change[Coordinator] | None:
    """Take a place in the caseload for `case_id`; nothing if it holds one already."""
    if coordinator is None:
        raise NotFound("no such coordinator")
    if case_id in coordinator.active_cases:
        return None
    if not coordinator.has_room():
        raise CaseloadFull(f"{coordinator.coordinator_id}'s caseload is full")
    reserved = PlaceReserved(case_id=case_id, coordinator_id=coordinator.coordinator_id, manual=manual)
    return Change(coordinator.model_copy(update={"active_cases": [*coordinator.active_cases, case_id]}), [reserved])


def release(coordinator: Coordinator | None, case_id: str) -> Change[Coordinator] | None:
    if coordinator is None or case_id not in coordinator.active_cases:
        return None
    updated = coordinator.model_copy(update={"active_cases": [c for c in coordinator.active_cases if c != case_id]})
    return Change(updated, [PlaceFreed(coordinator_id=coordinator.coordinator_id)])


# --- cases ------------------------------------------------------------------------------


class Stage(StrEnum):
    AWAITING_CONSENT = "awaiting_consent"
    UNASSIGNED = "unassigned"  # consent given, nobody eligible yet: waits visibly
    PREPARING = "preparing"
    SCHEDULED = "scheduled"
    HELD = "held"
    CLOSED = "closed"  # the plan was accepted, or no plan was reached: the coordinator's work is done
    CANCELLED = "cancelled"
    WITHDRAWN = "withdrawn"


ENDED = frozenset({Stage.CLOSED, Stage.CANCELLED, Stage.WITHDRAWN})
NOT_TRIED_YET = "not assigned yet"  # the waiting reason of a case whose first attempt is still on its way


MAX_PER_ROLE = 1000  # people of one role in one family's network: more is a typing error


def _plausible(counts: RoleCounts) -> RoleCounts:
    if any(count > MAX_PER_ROLE for count in counts.model_dump().values()):
        raise ValueError(f"at most {MAX_PER_ROLE} people in one role")
    return counts


# What a coordinator types in. Unbounded, a number past 2**63 reached the database driver
# and answered 500 (found by the generated requests in tests/e2e).
Counts = Annotated[RoleCounts, AfterValidator(_plausible)]


class Preparation(Strict):
    """The coordinator's preparation, in counts: who the network is stays with the family."""

    network: Counts = RoleCounts()
    invited: Counts = RoleCounts()
    accepted: Counts = RoleCounts()
    parents_with_responsibility: int = Field(default=0, ge=0, le=4)
    interpreter_arranged: bool = False
    location_booked: bool = False
    catering_arranged: bool = False


class Attendance(Strict):
    attended: Counts
    all_parents_with_responsibility_attended: bool


class Referral(BaseModel):
    """What scheduling keeps of a referral: what choosing a coordinator and the 60 days need."""

    received_at: AwareDatetime
    region: Region
    language: LanguageCode
    referrer_organisation_id: Identifier | None = None
    funder_id: Identifier
    coordinator_preferences: CoordinatorPreferences = CoordinatorPreferences()


class Case(BaseModel):
    case_id: str
    referral: Referral
    consent: ConsentState
    stage: Stage
    waiting_reason: str | None = None
    coordinator_id: Identifier | None = None
    meeting_number: PositiveInt = 1
    preparation: Preparation = Preparation()
    conference_date: date | None = None
    held_on: date | None = None
    held_days_since_referral: int | None = None
    personal_data_erased_at: AwareDatetime | None = None

    @property
    def open(self) -> bool:
        return self.stage in (Stage.AWAITING_CONSENT, Stage.UNASSIGNED, Stage.PREPARING, Stage.SCHEDULED)

    @property
    def found_waiting(self) -> bool:
        """An attempt found nobody to take it: it waits for a place to come free."""
        return self.stage is Stage.UNASSIGNED and self.waiting_reason != NOT_TRIED_YET

    @property
    def needs_coordinator(self) -> bool:
        return self.stage is Stage.UNASSIGNED or (self.stage is Stage.PREPARING and self.coordinator_id is None)

    def days_since_referral(self, day: date) -> int:
        return max(0, (day - self.referral.received_at.date()).days)


def referral_received(case: Case | None, event: ReferralReceived) -> Change[Case] | None:
    if case is not None:
        return None
    waiting = event.consent is not ConsentState.GIVEN
    referral = Referral(
        received_at=event.received_at, region=event.region, language=event.language,
        referrer_organisation_id=event.referrer_organisation_id, funder_id=event.funder_id,
        coordinator_preferences=event.coordinator_preferences,
    )  # fmt: skip
    new = Case(
        case_id=event.case_id,
        referral=referral,
        consent=event.consent,
        stage=Stage.AWAITING_CONSENT if waiting else Stage.UNASSIGNED,
        waiting_reason="waiting for the family's consent" if waiting else NOT_TRIED_YET,
    )
    return Change(new, [] if waiting else [CoordinatorWanted(case_id=event.case_id)])


def consent_recorded(case: Case | None, consent: ConsentState) -> Change[Case] | None:
    if case is None or case.stage is not Stage.AWAITING_CONSENT or consent is not ConsentState.GIVEN:
        return None
    updated = case.model_copy(update={"consent": consent, "stage": Stage.UNASSIGNED, "waiting_reason": NOT_TRIED_YET})
    return Change(updated, [CoordinatorWanted(case_id=case.case_id)])


def eligible(coordinator: Coordinator, case: Case, today: date) -> str | None:
    """Why `coordinator` cannot take `case`, or None if they can."""
    referral = case.referral
    if referral.region.province not in coordinator.profile.provinces:
        return "region"
    if referral.language not in coordinator.profile.languages:
        return "language"
    if referral.referrer_organisation_id and referral.referrer_organisation_id in coordinator.profile.tied_organisations:
        return "tied to the referring organisation"
    if not coordinator.available_on(today):
        return "unavailable"
    if not coordinator.has_room() and case.case_id not in coordinator.active_cases:
        return "caseload full"
    return None


def preference_matches(coordinator: Coordinator, preferences: CoordinatorPreferences) -> int:
    profile = coordinator.profile
    return sum(
        (
            preferences.language is not None and preferences.language in profile.languages,
            preferences.gender is not None and profile.gender is not None and preferences.gender.lower() == profile.gender.lower(),
            preferences.culture is not None and preferences.culture.lower() in (c.lower() for c in profile.cultures),
        )
    )


def ranked(coordinators: list[Coordinator], case: Case, today: date) -> tuple[list[Coordinator], str]:
    """The eligible coordinators, best first, and if there are none the commonest reason."""
    candidates, reasons = [], []
    for coordinator in coordinators:
        reason = eligible(coordinator, case, today)
        if reason is None:
            candidates.append(coordinator)
        else:
            reasons.append(reason)
    preferences = case.referral.coordinator_preferences
    candidates.sort(key=lambda c: (-preference_matches(c, preferences), c.load, c.coordinator_id))
    if candidates:
        return candidates, ""
    if not reasons:
        return [], "no coordinators registered"
    why = max(set(reasons), key=reasons.count)
    return [], f"no eligible coordinator ({why})"


def waiting(case: Case | None, reason: str) -> Change[Case] | None:
    if case is None or not case.needs_coordinator or case.waiting_reason == reason:
        return None
    return Change(case.model_copy(update={"stage": Stage.UNASSIGNED, "waiting_reason": reason}))


def place_reserved(case: Case | None, coordinator_id: str, now: datetime, *, manual: bool = False) -> Change[Case] | None:
    """A place is held for the case: it takes this coordinator (giving back the place of one
    it had, if operations moved it), or gives the place back if it no longer wants it."""
    if case is None:
        raise NotFound("no such case")
    if case.coordinator_id == coordinator_id:
        return None
    if not case.open or not (manual or case.needs_coordinator):
        return Change(case, [PlaceReleaseRequested(case_id=case.case_id, coordinator_id=coordinator_id)])
    stage = case.stage if case.stage is Stage.SCHEDULED else Stage.PREPARING
    events: list[Event] = [
        CoordinatorAssigned(
            case_id=case.case_id,
            coordinator_id=coordinator_id,
            assigned_at=now,
            region=case.referral.region,
            manual=manual,
            previous_coordinator_id=case.coordinator_id,
        )
    ]
    if case.coordinator_id is not None:
        events.append(PlaceReleaseRequested(case_id=case.case_id, coordinator_id=case.coordinator_id))
    return Change(case.model_copy(update={"coordinator_id": coordinator_id, "stage": stage, "waiting_reason": None}), events)


def _ended(case: Case, stage: Stage, events: list[Event]) -> Change[Case]:
    """The case ends here: its coordinator's place is given back."""
    if case.coordinator_id is not None:
        events = [*events, PlaceReleaseRequested(case_id=case.case_id, coordinator_id=case.coordinator_id)]
    return Change(case.model_copy(update={"stage": stage, "waiting_reason": None}), events)


def prepare(case: Case | None, preparation: Preparation) -> Change[Case]:
    case = _open(case)
    return Change(case.model_copy(update={"preparation": preparation}))


def schedule(case: Case | None, day: date, today: date) -> Change[Case]:
    case = _open(case)
    if case.coordinator_id is None:
        raise RuleViolation("no coordinator assigned yet")
    if day < today:
        raise RuleViolation("the conference date is in the past")
    if case.stage is Stage.SCHEDULED and case.conference_date is not None:
        if case.conference_date == day:
            return Change(case)
        event: ConferenceScheduled | ConferenceRescheduled = ConferenceRescheduled(
            case_id=case.case_id,
            meeting_number=case.meeting_number,
            previous_date=case.conference_date,
            conference_date=day,
            days_since_referral=case.days_since_referral(day),
        )
    else:
        if case.preparation.invited.total == 0:
            raise RuleViolation("invite the network before setting the date")
        event = ConferenceScheduled(
            case_id=case.case_id,
            meeting_number=case.meeting_number,
            conference_date=day,
            region=case.referral.region,
            funder_id=case.referral.funder_id,
            coordinator_id=case.coordinator_id,
            days_since_referral=case.days_since_referral(day),
            invited_by_role=case.preparation.invited,
            interpreter_arranged=case.preparation.interpreter_arranged,
        )
    return Change(case.model_copy(update={"stage": Stage.SCHEDULED, "conference_date": day}), [event])


def held(case: Case | None, attendance: Attendance, today: date) -> Change[Case]:
    case = _open(case)
    if case.stage is not Stage.SCHEDULED or case.conference_date is None:
        raise RuleViolation("the conference has not been scheduled")
    if today < case.conference_date:
        raise RuleViolation("the conference date has not come yet")
    days = case.days_since_referral(case.conference_date)
    event = ConferenceHeld(
        case_id=case.case_id,
        meeting_number=case.meeting_number,
        held_on=case.conference_date,
        region=case.referral.region,
        funder_id=case.referral.funder_id,
        days_since_referral=days,
        attended_by_role=attendance.attended,
        all_parents_with_responsibility_attended=attendance.all_parents_with_responsibility_attended,
    )
    first_days = days if case.meeting_number == 1 else case.held_days_since_referral
    updated = case.model_copy(update={"stage": Stage.HELD, "held_on": case.conference_date, "held_days_since_referral": first_days})
    return Change(updated, [event])


def cancel(case: Case | None, reason: CancellationReason, now: datetime) -> Change[Case]:
    case = _open(case)
    event = ConferenceCancelled(case_id=case.case_id, meeting_number=case.meeting_number, cancelled_at=now, reason=reason)
    return _ended(case, Stage.CANCELLED, [event])


def withdrawn(case: Case | None, now: datetime) -> Change[Case] | None:
    """The referral was withdrawn: everything stops; a planned conference is cancelled."""
    if case is None or not case.open:
        return None
    events: list[Event] = []
    if case.stage in (Stage.PREPARING, Stage.SCHEDULED):
        events.append(
            ConferenceCancelled(
                case_id=case.case_id, meeting_number=case.meeting_number, cancelled_at=now,
                reason=CancellationReason.CONSENT_WITHDRAWN,
            )
        )  # fmt: skip
    return _ended(case, Stage.WITHDRAWN, events)


def personal_data_erased(case: Case | None, at: datetime) -> Change[Case] | None:
    """Referral erased the case's personal data: the family's wishes for its coordinator go;
    dates, stage and counts (the 60-day figures) stay. A running case is closed by the
    ReferralWithdrawn that comes with it. Once only."""
    if case is None or case.personal_data_erased_at is not None:
        return None
    referral = case.referral.model_copy(update={"coordinator_preferences": CoordinatorPreferences()})
    return Change(case.model_copy(update={"referral": referral, "personal_data_erased_at": at}))


def plan_settled(case: Case | None, meeting: int) -> Change[Case] | None:
    """The plan of `meeting` was accepted, or no plan was reached: the case closes here."""
    if case is None or case.stage is not Stage.HELD or case.meeting_number != meeting:
        return None
    return _ended(case, Stage.CLOSED, [])


def second_meeting(case: Case | None, finished_meeting: int) -> Change[Case] | None:
    """The family needs another meeting: back to preparation, with the same coordinator."""
    if case is None or case.meeting_number > finished_meeting:
        return None
    updated = case.model_copy(
        update={
            "stage": Stage.PREPARING if case.coordinator_id else Stage.UNASSIGNED,
            "meeting_number": finished_meeting + 1,
            "conference_date": None,
            "preparation": Preparation(),
        }
    )
    return Change(updated, [] if case.coordinator_id else [CoordinatorWanted(case_id=case.case_id)])


def _open(case: Case | None) -> Case:
    if case is None:
        raise NotFound("no such case")
    if not case.open:
        raise RuleViolation(f"the case is {case.stage}")
    return case


# --- the 60-day target ------------------------------------------------------------------


class SixtyDays(BaseModel):
    cases: int
    held: int
    held_within_60_days: int
    share_within_60_days: float | None
    reference_share: float = REFERENCE_SHARE_WITHIN_60_DAYS


def sixty_day_share(cases: list[Case]) -> SixtyDays:
    """Of the first conferences held, the share held within 60 days of referral."""
    held_days = [c.held_days_since_referral for c in cases if c.held_days_since_referral is not None]
    within = sum(1 for days in held_days if days <= SIXTY_DAYS)
    return SixtyDays(
        cases=len(cases),
        held=len(held_days),
        held_within_60_days=within,
        share_within_60_days=round(within / len(held_days), 3) if held_days else None,
    )


def at_risk(case: Case, today: date) -> str | None:
    """Why an open first-meeting case threatens the 60-day target, or None."""
    if not case.open or case.meeting_number > 1 or case.stage is Stage.AWAITING_CONSENT:
        return None
    if case.conference_date is not None and case.days_since_referral(case.conference_date) > SIXTY_DAYS:
        return "planned after day 60"
    if case.conference_date is None and case.days_since_referral(today) >= AT_RISK_AFTER_DAYS:
        return f"no date yet after {case.days_since_referral(today)} days"
    return None

