"""Scheduling's pure rules: eligibility, ranking, caseload, the 60-day figures."""

from datetime import UTC, date, datetime, timedelta

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.scheduling import domain
from shared.contract.vocabulary import CoordinatorPreferences, Province, Region
from tests.support.samples import referral_received

TODAY = date(2026, 11, 23)


def coordinator(cid: str, *, provinces=("UT",), languages=("nl",), max_cases=3, active=(), **extra) -> domain.Coordinator:  # type: ignore[no-untyped-def]
    profile = domain.CoordinatorProfile(
        provinces=list(provinces), languages=list(languages), max_cases=max_cases, professional_care_provider=False, **extra
    )
    return domain.Coordinator(coordinator_id=cid, profile=profile, active_cases=list(active))


def case(**referral: object) -> domain.Case:
    event = referral_received().model_copy(update={"region": Region(province=Province.UTRECHT), "language": "nl", "referrer_organisation_id": "bjz-1", **referral})
    change = domain.referral_received(None, event)
    assert change is not None
    return change.state


def test_a_care_professional_cannot_register() -> None:
    with pytest.raises(pydantic.ValidationError, match="independence"):
        domain.CoordinatorProfile(provinces=["UT"], languages=["nl"], max_cases=2, professional_care_provider=True)


def test_eligibility_reasons() -> None:
    c = case()
    assert domain.eligible(coordinator("x", provinces=("GE",)), c, TODAY) == "region"
    assert domain.eligible(coordinator("x", languages=("ar",)), c, TODAY) == "language"
    assert domain.eligible(coordinator("x", tied_organisations=["bjz-1"]), c, TODAY) == "tied to the referring organisation"
    away = [domain.Unavailable(starts=TODAY - timedelta(days=1), ends=TODAY + timedelta(days=5))]
    assert domain.eligible(coordinator("x", unavailable=away), c, TODAY) == "unavailable"
    assert domain.eligible(coordinator("x", max_cases=1, active=["other"]), c, TODAY) == "caseload full"
    assert domain.eligible(coordinator("x"), c, TODAY) is None


def test_ranking_prefers_stated_preferences_then_the_lowest_relative_caseload() -> None:
    c = case(coordinator_preferences=CoordinatorPreferences(gender="female"))
    busy_match = coordinator("busy", gender="female", max_cases=4, active=["a", "b"])
    idle = coordinator("idle")
    idle_match = coordinator("idle-match", gender="female", max_cases=10, active=["a"])
    ranked, reason = domain.ranked([idle, busy_match, idle_match], c, TODAY)
    assert [r.coordinator_id for r in ranked] == ["idle-match", "busy", "idle"] and reason == ""
    assert domain.ranked([coordinator("x", languages=("tr",))], c, TODAY) == (
        [],
        "de enige coördinator in de regio spreekt de taal van de familie (nl) niet / "
        "the region's only coordinator does not speak the family's language (nl)",
    )


def test_a_shared_cultural_background_is_matched_by_its_code() -> None:
    c = case(coordinator_preferences=CoordinatorPreferences(culture="moroccan"))
    other = coordinator("other", cultures=["turkish"])
    shared = coordinator("shared", cultures=["dutch", "moroccan"], max_cases=2, active=["a"])
    ranked, _ = domain.ranked([other, shared], c, TODAY)
    assert [r.coordinator_id for r in ranked] == ["shared", "other"]


@given(st.integers(min_value=1, max_value=5), st.lists(st.text(alphabet="abc", min_size=1, max_size=3).map(lambda s: f"case-000{s}"), max_size=12))
def test_a_caseload_never_exceeds_its_maximum(maximum: int, case_ids: list[str]) -> None:
    state = coordinator("x", max_cases=maximum)
    for case_id in case_ids:
        try:
            change = domain.reserve(state, case_id)
        except domain.CaseloadFull:
            continue
        if change is not None:
            state = change.state
        assert len(state.active_cases) <= maximum
        assert len(set(state.active_cases)) == len(state.active_cases)


def test_sixty_day_share_and_at_risk() -> None:
    received = datetime(2026, 9, 1, tzinfo=UTC)
    cases = [case(received_at=received) for _ in range(4)]
    cases[0] = cases[0].model_copy(update={"held_days_since_referral": 30, "stage": domain.Stage.HELD})
    cases[1] = cases[1].model_copy(update={"held_days_since_referral": 75, "stage": domain.Stage.HELD})
    figures = domain.sixty_day_share(cases)
    assert (figures.held, figures.held_within_60_days, figures.share_within_60_days) == (2, 1, 0.5)
    open_case = cases[2].model_copy(update={"stage": domain.Stage.PREPARING})
    assert domain.at_risk(open_case, date(2026, 10, 1)) is None
    assert domain.at_risk(open_case, date(2026, 10, 20)) == "no date yet after 49 days"
    planned_late = open_case.model_copy(update={"stage": domain.Stage.SCHEDULED, "conference_date": date(2026, 11, 15)})
    assert domain.at_risk(planned_late, date(2026, 10, 1)) == "planned after day 60"


def test_a_settled_plan_closes_only_the_held_meeting_it_belongs_to() -> None:
    held = case().model_copy(update={"stage": domain.Stage.HELD, "coordinator_id": "c1", "meeting_number": 2})
    closed = domain.plan_settled(held, 2)
    assert closed is not None and closed.state.stage is domain.Stage.CLOSED and closed.state.stage in domain.ENDED
    assert domain.plan_settled(held, 1) is None, "a late outcome of an earlier meeting"
    assert domain.plan_settled(held.model_copy(update={"stage": domain.Stage.PREPARING}), 2) is None
    assert domain.plan_settled(None, 1) is None


@pytest.mark.parametrize("model", ["preparation", "attendance"])
def test_counts_of_people_past_any_real_network_are_refused(model: str) -> None:
    """2**70 parents reached the database driver (OverflowError, HTTP 500) before."""
    huge = {"parents": 2**70}
    with pytest.raises(pydantic.ValidationError, match="at most 1000 people in one role"):
        if model == "preparation":
            domain.Preparation.model_validate({"network": huge})
        else:
            domain.Attendance.model_validate({"attended": huge, "all_parents_with_responsibility_attended": True})
    assert domain.Preparation.model_validate({"network": {"parents": 1000}}).network.parents == 1000
