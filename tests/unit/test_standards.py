"""The service standards' targets: defaults, overridden per funder from the environment."""

import pydantic
import pytest

from shared.standards import Standard, StandardsSettings


def test_targets_default_and_per_funder_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert StandardsSettings().targets_for("anyone").model_dump() == {"first_contact_days": 5, "conference_days": 60, "followup_check_days": 14}
    monkeypatch.setenv("KRING_STANDARD_CONFERENCE_DAYS", "45")
    monkeypatch.setenv("KRING_STANDARD_PER_FUNDER", '{"gm-utrecht": {"first_contact_days": 3}}')
    settings = StandardsSettings()
    strict, other = settings.targets_for("gm-utrecht"), settings.targets_for("prov-utrecht")
    assert (strict.days(Standard.FIRST_CONTACT), strict.days(Standard.CONFERENCE)) == (3, 45)
    assert (other.days(Standard.FIRST_CONTACT), other.days(Standard.CONFERENCE)) == (5, 45)
    assert strict.reached(Standard.FIRST_CONTACT, 3) and not strict.reached(Standard.FIRST_CONTACT, 4)
    monkeypatch.setenv("KRING_STANDARD_PER_FUNDER", '{"gm-utrecht": {"first_contact": 3}}')
    with pytest.raises(pydantic.ValidationError):
        StandardsSettings()  # a misspelt standard is refused, not ignored
