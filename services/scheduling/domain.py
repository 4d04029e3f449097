"""Coordinators, assignment and the road to the conference date. Pure rules, no I/O.

A coordinator is an independent citizen, never a professional care provider, and never
tied to the organisation that referred the family. Assignment picks, among the eligible
(region, the family's language, room in the caseload, available today, no tie to the
referrer), the one matching most of the family's stated preferences with the lowest
relative caseload.

A case holds one or more conferences (`conference_number`): the first, and a follow-up
conference when the three-month check asks for a new one (FollowUpCompleted with
`new_conference_requested`), preferably with the same coordinator. That is not a second
meeting (`meeting_number`): a second meeting continues the SAME conference whose plan was not
finished (SecondMeetingNeeded); a follow-up conference starts anew at meeting 1, with a new
assignment, date, plan and check.
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
    FirstContactMade,
    PlaceFreed,
    PlaceReleaseRequested,
    PlaceReserved,
    ReferralReceived,
)
from shared.contract.vocabulary import (
    CancellationReason,
    ConsentState,
    CoordinatorPreferences,
    CulturalBackground,
    Gender,
    Identifier,
    LanguageCode,
    Province,
    Region,
    RoleCounts,
)
from shared.domain import Change, Strict
from shared.errors import NotFound, RuleViolation, TransientFault
from shared.standards import Standard, Targets

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
    gender: Gender | None = None
    cultures: list[CulturalBackground] = Field(default=[], max_length=5)
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
    conference_number: PositiveInt = Field(default=1, description="1: the first conference; 2 or more: a follow-up conference")
    meeting_number: PositiveInt = Field(default=1, description="the meeting of the current conference (2: a second meeting)")
    preferred_coordinator_id: Identifier | None = Field(
        default=None, description="a follow-up conference goes to the previous conference's coordinator if they can take it"
    )
    conference_opened_at: AwareDatetime | None = Field(default=None, description="when a follow-up conference was asked for")
    assigned_at: AwareDatetime | None = Field(default=None, description="the current conference's first assignment")
    first_contact_at: AwareDatetime | None = None
    followup_due_at: AwareDatetime | None = Field(default=None, description="the three-month check is due, not recorded yet")
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

    @property
    def waiting_since(self) -> datetime:
        """A follow-up conference waits from when it was asked for, not from the referral."""
        return self.conference_opened_at or self.referral.received_at

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
            preferences.gender is not None and preferences.gender == profile.gender,
            preferences.culture is not None and preferences.culture in profile.cultures,
        )
    )


def ranked(coordinators: list[Coordinator], case: Case, today: date) -> tuple[list[Coordinator], str]:
    """The eligible coordinators, best first, and if there are none the precise reason why
    the case waits (`waiting_reason`). A follow-up conference's previous coordinator comes
    first if they can take it; then the family's stated preferences, then the lowest load."""
    candidates, reasons = [], {}
    for coordinator in coordinators:
        reason = eligible(coordinator, case, today)
        if reason is None:
            candidates.append(coordinator)
        else:
            reasons[coordinator.coordinator_id] = reason
    preferences = case.referral.coordinator_preferences
    candidates.sort(
        key=lambda c: (c.coordinator_id != case.preferred_coordinator_id, -preference_matches(c, preferences), c.load, c.coordinator_id)
    )
    if candidates:
        return candidates, ""
    return [], waiting_reason(case, reasons)


# Why the coordinators of the case's region cannot take it, in Dutch and in English: what
# one of them is, and what all of them are.
_ONE = {
    "language": ("spreekt de taal van de familie ({language}) niet", "does not speak the family's language ({language})"),
    "tied to the referring organisation": ("is verbonden aan de verwijzer", "is tied to the referrer"),
    "unavailable": ("is nu niet beschikbaar", "is unavailable now"),
    "caseload full": ("heeft geen plaats meer", "has a full caseload"),
}
_ALL = {
    "language": ("spreken de taal van de familie ({language}) niet", "do not speak the family's language ({language})"),
    "tied to the referring organisation": ("zijn verbonden aan de verwijzer", "are tied to the referrer"),
    "unavailable": ("zijn nu niet beschikbaar", "are unavailable now"),
    "caseload full": ("hebben geen plaats meer", "have a full caseload"),
}
NO_COORDINATORS = "er zijn geen coördinatoren ingeschreven / no coordinators registered"
FILLED_MEANWHILE = "de plaatsen van de geschikte coördinatoren raakten net vol / the suitable coordinators' caseloads filled up meanwhile"


def waiting_reason(case: Case, reasons: dict[str, str]) -> str:
    """The real reason, e.g. "the region's only coordinator is tied to the referrer", from
    why each coordinator cannot take the case (`eligible`). Dutch first, English beside it.
    Codes only (a province, a language code): nothing about the family."""
    if not reasons:
        return NO_COORDINATORS
    province = case.referral.region.province.value
    in_region = {cid: why for cid, why in reasons.items() if why != "region"}
    if not in_region:
        return f"geen coördinator werkt in de regio ({province}) / no coordinator works in the region ({province})"
    language = case.referral.language

    def phrase(table: dict[str, tuple[str, str]], why: str) -> tuple[str, str]:
        nl, en = table[why]
        return nl.format(language=language), en.format(language=language)

    kinds = sorted(set(in_region.values()), key=lambda why: (-list(in_region.values()).count(why), why))
    if len(in_region) == 1:
        one_nl, one_en = phrase(_ONE, kinds[0])
        nl, en = f"de enige coördinator in de regio {one_nl}", f"the region's only coordinator {one_en}"
    elif len(kinds) == 1:
        all_nl, all_en = phrase(_ALL, kinds[0])
        nl = f"alle {len(in_region)} coördinatoren in de regio {all_nl}"
        en = f"all {len(in_region)} coordinators of the region {all_en}"
    else:
        counted = [(list(in_region.values()).count(why), why) for why in kinds]
        parts = [(n, phrase(_ONE if n == 1 else _ALL, why)) for n, why in counted]
        nl = f"geen van de {len(in_region)} coördinatoren in de regio kan: " + ", ".join(f"{n} {p[0]}" for n, p in parts)
        en = f"none of the region's {len(in_region)} coordinators can take it: " + ", ".join(f"{n} {p[1]}" for n, p in parts)
    previous = case.preferred_coordinator_id
    if previous is not None and previous in reasons:
        why = reasons[previous]
        prev_nl, prev_en = phrase(_ONE, why) if why in _ONE else ("werkt niet in de regio", "does not work in the region")
        nl, en = f"{nl}; de vorige coördinator {prev_nl}", f"{en}; the previous coordinator {prev_en}"
    elif previous is not None:
        nl, en = f"{nl}; de vorige coördinator is niet meer ingeschreven", f"{en}; the previous coordinator is no longer registered"
    return f"{nl} / {en}"


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
            conference_number=case.conference_number,
        )
    ]
    if case.coordinator_id is not None:
        events.append(PlaceReleaseRequested(case_id=case.case_id, coordinator_id=case.coordinator_id))
    updated = case.model_copy(
        update={"coordinator_id": coordinator_id, "stage": stage, "waiting_reason": None, "assigned_at": case.assigned_at or now}
    )
    return Change(updated, events)


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
            conference_number=case.conference_number,
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
            conference_number=case.conference_number,
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
        conference_number=case.conference_number,
        meeting_number=case.meeting_number,
        held_on=case.conference_date,
        region=case.referral.region,
        funder_id=case.referral.funder_id,
        days_since_referral=days,
        attended_by_role=attendance.attended,
        all_parents_with_responsibility_attended=attendance.all_parents_with_responsibility_attended,
    )
    first = case.conference_number == 1 and case.meeting_number == 1  # the 60 days are the first conference's
    first_days = days if first else case.held_days_since_referral
    updated = case.model_copy(update={"stage": Stage.HELD, "held_on": case.conference_date, "held_days_since_referral": first_days})
    return Change(updated, [event])


def cancel(case: Case | None, reason: CancellationReason, now: datetime) -> Change[Case]:
    case = _open(case)
    event = ConferenceCancelled(
        case_id=case.case_id, conference_number=case.conference_number, meeting_number=case.meeting_number, cancelled_at=now, reason=reason
    )
    return _ended(case, Stage.CANCELLED, [event])


def withdrawn(case: Case | None, now: datetime) -> Change[Case] | None:
    """The referral was withdrawn: everything stops; a planned conference is cancelled."""
    if case is None or not case.open:
        return None
    events: list[Event] = []
    if case.stage in (Stage.PREPARING, Stage.SCHEDULED):
        events.append(
            ConferenceCancelled(
                case_id=case.case_id, conference_number=case.conference_number, meeting_number=case.meeting_number, cancelled_at=now,
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


def plan_settled(case: Case | None, meeting: int, conference: int = 1) -> Change[Case] | None:
    """The plan of `meeting` of `conference` was accepted, or no plan was reached: the case
    closes here (until a three-month check asks for a follow-up conference)."""
    if case is None or case.stage is not Stage.HELD or (case.conference_number, case.meeting_number) != (conference, meeting):
        return None
    return _ended(case, Stage.CLOSED, [])


def second_meeting(case: Case | None, finished_meeting: int, conference: int = 1) -> Change[Case] | None:
    """The family needs another meeting of the same conference: back to preparation, with
    the same coordinator. (Not a follow-up conference: see `followup_conference`.)"""
    if case is None or case.conference_number != conference or case.meeting_number > finished_meeting:
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


def followup_conference(case: Case | None, checked_conference: int, now: datetime) -> Change[Case] | None:
    """The three-month check of `checked_conference` asked for a new conference: the case
    opens the next conference (a follow-up conference, meeting 1), preferably with the same
    coordinator: CoordinatorWanted ranks them first if they are still registered, eligible
    and have room, else the normal assignment picks one. Once per check (a repeat, or a check
    of an earlier conference, changes nothing); a case that ended otherwise (cancelled,
    withdrawn) or is still open stays as it is."""
    if case is None or case.conference_number != checked_conference or case.stage is not Stage.CLOSED:
        if case is not None and case.conference_number == checked_conference and case.stage is Stage.HELD:
            raise TransientFault("the plan's acceptance has not closed the conference yet")  # on another queue: it comes
        return None
    updated = case.model_copy(
        update={
            "stage": Stage.UNASSIGNED, "waiting_reason": NOT_TRIED_YET, "conference_number": checked_conference + 1,
            "meeting_number": 1, "preferred_coordinator_id": case.coordinator_id, "coordinator_id": None,
            "conference_opened_at": now, "assigned_at": None, "first_contact_at": None, "preparation": Preparation(),
            "conference_date": None, "held_on": None, "followup_due_at": None,
        }
    )  # fmt: skip
    return Change(updated, [CoordinatorWanted(case_id=case.case_id)])


def first_contact(case: Case | None, coordinator_id: str, contacted_at: datetime, now: datetime) -> Change[Case] | None:
    """The coordinator reached the family: the first-contact standard is measured from the
    assignment. Once per conference (the same contact again changes nothing)."""
    case = _open(case)
    if case.coordinator_id != coordinator_id or case.assigned_at is None:
        raise RuleViolation("only the case's assigned coordinator records the first contact")
    if case.first_contact_at is not None:
        if case.first_contact_at == contacted_at:
            return None
        raise RuleViolation("the first contact is recorded already")
    if contacted_at > now:
        raise RuleViolation("contacted_at is in the future")
    if contacted_at < case.assigned_at:
        raise RuleViolation("contacted_at is before the assignment")
    event = FirstContactMade(
        case_id=case.case_id, conference_number=case.conference_number, coordinator_id=coordinator_id,
        contacted_at=contacted_at, days_since_assignment=(contacted_at.date() - case.assigned_at.date()).days,
    )  # fmt: skip
    return Change(case.model_copy(update={"first_contact_at": contacted_at}), [event])


def followup_due(case: Case | None, conference: int, due_at: datetime) -> Change[Case] | None:
    """The three-month check came due: its deadline shows on the coordinator's list."""
    if case is None or case.conference_number != conference or case.followup_due_at == due_at:
        return None
    return Change(case.model_copy(update={"followup_due_at": due_at}))


def followup_checked(case: Case | None, conference: int) -> Change[Case] | None:
    if case is None or case.conference_number != conference or case.followup_due_at is None:
        return None
    return Change(case.model_copy(update={"followup_due_at": None}))


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
    """Why an open first-meeting case of its first conference threatens the 60-day target, or None."""
    if not case.open or case.meeting_number > 1 or case.conference_number > 1 or case.stage is Stage.AWAITING_CONSENT:
        return None
    if case.conference_date is not None and case.days_since_referral(case.conference_date) > SIXTY_DAYS:
        return "planned after day 60"
    if case.conference_date is None and case.days_since_referral(today) >= AT_RISK_AFTER_DAYS:
        return f"no date yet after {case.days_since_referral(today)} days"
    return None


# --- the service standards ----------------------------------------------------------------


class Deadline(BaseModel):
    """A service standard the case has not met yet, and the last day it can be met."""

    standard: Standard
    deadline: date
    days_left: int


def deadlines(case: Case, targets: Targets, today: date) -> list[Deadline]:
    """The standards still to meet on this case, with their deadlines (shared.standards):
    first contact after the assignment, the first conference within its target of the
    referral (a follow-up conference has no such target), and the three-month check once it
    is due."""
    due: list[tuple[Standard, date]] = []
    if case.open and case.assigned_at is not None and case.first_contact_at is None:
        due.append((Standard.FIRST_CONTACT, targets.deadline(Standard.FIRST_CONTACT, case.assigned_at.date())))
    first_conference_pending = case.conference_number == 1 and case.held_days_since_referral is None
    if case.open and case.stage is not Stage.AWAITING_CONSENT and first_conference_pending:
        due.append((Standard.CONFERENCE, targets.deadline(Standard.CONFERENCE, case.referral.received_at.date())))
    if case.followup_due_at is not None:
        due.append((Standard.FOLLOWUP_CHECK, targets.deadline(Standard.FOLLOWUP_CHECK, case.followup_due_at.date())))
    return [Deadline(standard=standard, deadline=day, days_left=(day - today).days) for standard, day in due]
