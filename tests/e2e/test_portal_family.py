"""End to end in a real browser: a family opens the portal with the one-time code from its
coordinator, reads its plan and bottom-line requirements in Dutch (English beside it), cannot
open another family's plan, and withdraws its consent (issue 25). Every page is checked by
axe-core and kept as a screenshot."""

import asyncio
import uuid
from typing import Any

import pytest

from shared.auth import Role
from tests.support.browser import checked, chromium
from tests.support.referrals import submit_referral
from tests.support.system import System, load_demo, watching_driver

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
BUREAU = "bjz-utrecht"
REQUIREMENT = "De kinderen gaan elke dag naar school."


async def case_with_a_plan(demo: Any, driver: Any, number: int) -> tuple[str, str]:
    """A bureau's statutory case carried to a presented plan; its id and the coordinator's token."""
    reference = f"E2E/{uuid.uuid4().hex[:8]}"
    command = submit_referral(BUREAU, reference, bottom_line_requirements=[REQUIREMENT], responsible_professional_id="gezinsvoogd-e2e")
    del command["source_organisation_id"]  # the intake knows the sender from its broker user
    await driver.submit(command, BUREAU)
    case_id = await driver.until("the bureau's answer", lambda: asyncio.sleep(0, driver.accepted.get(reference)))
    ops = demo.token(Role.OPS, "ops-e2e")

    async def coordinator_of() -> str | None:
        response = await driver.call("scheduling", "GET", f"/cases/{case_id}", ops)
        return response.json().get("coordinator_id") if response.status_code == 200 else None

    coordinator = demo.token(Role.COORDINATOR, await driver.until("a coordinator", coordinator_of))
    scenario = demo.Scenario(
        number=number, via_bureau=True, province="UT", municipality="GM0344", funder="prov-utrecht", bureau=BUREAU, language="nl",
        statutory=True, consent_upfront=True, withdraws=False, revision=False, second_meeting=False, no_plan=False,
        children=[6], case_id=case_id,
    )  # fmt: skip
    await driver.conference(scenario, coordinator, 1)
    await driver.present(case_id, coordinator, [["r1"], []])
    return case_id, coordinator


def test_a_family_reads_its_plan_in_dutch_and_withdraws(system: System, rabbitmq_url: str) -> None:
    portal = system.start_portal()
    demo = load_demo()

    async def scenario() -> None:
        async with watching_driver(demo, system, rabbitmq_url) as driver:
            ops = demo.token(Role.OPS, "ops-e2e")
            profile = {"provinces": ["UT"], "languages": ["nl"], "gender": "female", "max_cases": 4, "professional_care_provider": False}
            (await driver.call("scheduling", "PUT", "/coordinators/coord-portal", ops, json=profile)).raise_for_status()
            ours, coordinator = await case_with_a_plan(demo, driver, 1)
            theirs, _ = await case_with_a_plan(demo, driver, 2)
            code = (await driver.call("referral", "POST", f"/cases/{ours}/family-access", coordinator)).json()["code"]
            await in_the_browser(portal, ours, theirs, code)
            withdrawn = await driver.call("referral", "GET", f"/cases/{ours}", ops)
            assert withdrawn.json()["withdrawal_reason"] == "consent_withdrawn" and not withdrawn.json()["active"], withdrawn.text

    asyncio.run(scenario())


async def in_the_browser(portal: str, ours: str, theirs: str, code: str) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(portal)
        assert await page.locator("html").get_attribute("lang") == "nl"
        await checked(page, "start")
        await page.get_by_role("link", name="Vul uw gezinscode in").click()
        await page.get_by_label("Code van uw coördinator").fill("AAAA-BBBB-CCCC")
        await page.get_by_role("button", name="Open ons plan").click()
        assert await page.get_by_role("alert").is_visible()  # a wrong code says so, in Dutch
        await checked(page, "family code refused")
        await page.get_by_label("Code van uw coördinator").fill(code)
        await page.get_by_role("button", name="Open ons plan").click()
        await page.get_by_role("heading", name="Ons plan", level=1).wait_for()
        assert page.url.endswith(f"/gezin/zaak/{ours}")
        assert await page.get_by_text("Hoe zorgen we samen dat de kinderen veilig opgroeien?").is_visible()
        assert await page.get_by_role("cell", name="Oma brengt de kinderen naar school.").is_visible()
        assert await page.get_by_role("cell", name="Opa of oma").is_visible()  # who, by role, in Dutch
        assert await page.get_by_role("cell", name="1 maart 2027").first.is_visible()  # by when, as Dutch people write it
        assert await page.get_by_role("listitem").filter(has_text=REQUIREMENT).is_visible()
        await checked(page, "family plan nl")
        await page.get_by_role("link", name="English").click()
        await page.get_by_role("heading", name="Our plan", level=1).wait_for()
        assert await page.locator("html").get_attribute("lang") == "en"
        assert await page.get_by_role("cell", name="March 1, 2027").first.is_visible()
        await checked(page, "family plan en")
        await page.get_by_role("link", name="Nederlands").click()

        await page.goto(f"{portal}/gezin/zaak/{theirs}")  # another family's plan: plans refuses this token
        await page.get_by_role("heading", name="U mag deze pagina niet zien").wait_for()
        assert REQUIREMENT not in await page.content()
        await checked(page, "another family refused")

        await page.goto(f"{portal}/gezin/zaak/{ours}")
        await page.get_by_role("link", name="Onze toestemming intrekken").click()
        await checked(page, "withdraw consent")
        await page.get_by_role("button", name="Ja, trek onze toestemming in").click()
        await page.get_by_role("heading", name="Toestemming ingetrokken").wait_for()
        await checked(page, "consent withdrawn")
        await page.goto(f"{portal}/gezin/zaak/{ours}")  # the session ended with the withdrawal
        await page.get_by_role("heading", name="U mag deze pagina niet zien").wait_for()
