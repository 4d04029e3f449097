"""End to end in a real browser, everyone signed in at the development OpenID Connect issuer
(issue 25): a coordinator finds a new case, calls the family, prepares and holds the conference
and takes down the plan; the responsible professional sets a bottom-line requirement before it,
asks for a revision naming the unmet one, then accepts; the family reads the plan in Dutch with
the code its coordinator made; the funder sees the figures change; operations finds the
coordinator and the case's audit. Another coordinator cannot open the case page. Every page is
checked by axe-core and kept as a screenshot."""

import asyncio
import re
import uuid
from datetime import UTC, datetime

import pytest
from playwright.async_api import Browser, Page, expect

from shared.auth import Role
from tests.support.browser import checked, chromium
from tests.support.referrals import submit_referral
from tests.support.system import System, load_demo, watching_driver

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
BUREAU = "bjz-utrecht"
FROM_THE_REFERRAL = "De kinderen gaan elke dag naar school."
SET_BEFORE = "Vader drinkt niet als de kinderen thuis zijn."
TIMEOUT = 60_000  # ms: events between the services take their time on a busy machine


def test_a_case_from_new_to_accepted_plan_in_the_browser(staff_system: System, rabbitmq_url: str) -> None:
    system = staff_system
    portal = system.start_portal()
    demo = load_demo()

    async def scenario() -> None:
        async with watching_driver(demo, system, rabbitmq_url) as driver:
            ops = demo.token(Role.OPS, "ops-e2e")
            for coordinator, province in (("coord-anna", "UT"), ("coord-bram", "NH")):
                profile = {"provinces": [province], "languages": ["nl"], "max_cases": 4, "professional_care_provider": False}
                (await driver.call("scheduling", "PUT", f"/coordinators/{coordinator}", ops, json=profile)).raise_for_status()
            reference = f"E2E/{uuid.uuid4().hex[:8]}"
            command = submit_referral(BUREAU, reference, bottom_line_requirements=[FROM_THE_REFERRAL], responsible_professional_id="gezinsvoogd-ut")
            del command["source_organisation_id"]  # the intake knows the sender from its broker user
            await driver.submit(command, BUREAU)
            case_id = await driver.until("the bureau's answer", lambda: asyncio.sleep(0, driver.accepted.get(reference)))
            await in_the_browser(portal, case_id, command["contact"]["name"])

    asyncio.run(scenario())


async def signed_in(browser: Browser, portal: str, who: str, lands_on: str) -> Page:
    """A browser of its own for `who`, signed in at the issuer's login page."""
    page = await (await browser.new_context()).new_page()
    page.set_default_timeout(TIMEOUT)
    await page.goto(portal)
    await page.get_by_role("link", name="Aanmelden voor uw werk").click()
    await page.get_by_role("button", name=re.compile(who)).click()
    await page.get_by_role("heading", name=lands_on, level=1).wait_for()
    return page


async def until_shown(page: Page, locator_of, what: str) -> None:  # type: ignore[no-untyped-def]
    """Reload until the page shows what another service has yet to hear of."""
    for _ in range(60):
        if await locator_of(page).count():
            return
        await asyncio.sleep(1)
        await page.reload()
    raise AssertionError(f"the page never showed {what}")


async def in_the_browser(portal: str, case_id: str, contact_name: str) -> None:
    async with chromium() as browser:
        funder = await signed_in(browser, portal, "funder-utrecht", "Wat de conferenties opleverden")
        plans_before = int(await funder.locator('[data-figure="plans"]').inner_text())
        await checked(funder, "funder report before")

        anna = await signed_in(browser, portal, "coord-anna", "Mijn zaken")
        await until_shown(anna, lambda p: p.get_by_role("link", name=case_id), "the new case")
        row = anna.get_by_role("row").filter(has_text=case_id)
        await expect(row).to_contain_text("In voorbereiding")
        await expect(row).to_contain_text("De familie bellen (eerste contact)")
        await expect(anna.get_by_role("heading", name="Wachtend in mijn provincies")).to_be_visible()
        await checked(anna, "coordinator my cases")
        await anna.get_by_role("link", name=case_id).click()
        await anna.get_by_role("heading", name=f"Zaak {case_id}", level=1).wait_for()
        await checked(anna, "coordinator case new")

        await anna.get_by_role("link", name="De contactpersoon tonen").click()
        await expect(anna.get_by_text(contact_name)).to_be_visible()
        await checked(anna, "coordinator contact person")
        await anna.get_by_role("link", name="Terug naar de zaak").click()
        await anna.get_by_role("button", name="Ik heb de familie gesproken (eerste contact)").click()
        await expect(anna.get_by_role("status")).to_have_text("Opgeslagen.")
        await expect(anna.get_by_text("Volgende stap: De conferentie voorbereiden en de datum plannen")).to_be_visible()

        for role, number in (("Ouders", "2"), ("Kinderen", "1"), ("Grootouders", "2"), ("Vrienden", "3")):
            for column in ("In het netwerk", "Uitgenodigd", "Bevestigd"):
                await anna.get_by_label(f"{role}: {column}", exact=True).fill(number)
        await anna.get_by_label("Ouders met gezag").fill("2")
        await anna.get_by_label("Plek gereserveerd").check()
        await anna.get_by_role("button", name="De voorbereiding opslaan").click()
        await expect(anna.get_by_role("status")).to_have_text("Opgeslagen.")
        await expect(anna.get_by_label("Vrienden: Bevestigd")).to_have_value("3")
        await checked(anna, "coordinator preparation")

        bram = await signed_in(browser, portal, "coord-bram", "Mijn zaken")
        await expect(bram.get_by_role("link", name=case_id)).to_have_count(0)
        await bram.goto(f"{portal}/coordinator/zaak/{case_id}")  # not his case: scheduling refuses his token
        await bram.get_by_role("heading", name="U mag deze pagina niet zien").wait_for()
        await bram.goto(f"{portal}/coordinator/zaak/{case_id}/contactpersoon")
        await bram.get_by_role("heading", name="U mag deze pagina niet zien").wait_for()
        assert contact_name not in await bram.content()
        await checked(bram, "another coordinator refused")

        professional = await signed_in(browser, portal, "gezinsvoogd-ut", "Mijn zaken met een maatregel")
        await until_shown(professional, lambda p: p.get_by_role("link", name=case_id), "the statutory case")
        await checked(professional, "professional my cases")
        await professional.get_by_role("link", name=case_id).click()
        await professional.get_by_label("Een nieuwe ondergrens, in gewone woorden").fill(SET_BEFORE)
        await professional.get_by_label("Ik heb deze voorwaarde aan de familie verteld").check()
        await professional.get_by_role("button", name="De voorwaarde stellen").click()
        await expect(professional.get_by_role("cell", name=SET_BEFORE)).to_be_visible()
        await checked(professional, "professional requirement set")

        today = datetime.now(UTC).date().isoformat()
        await anna.get_by_label("Datum", exact=True).fill(today)
        await anna.get_by_role("button", name="De conferentie plannen").click()
        await expect(anna.get_by_text("Fase: Conferentie gepland")).to_be_visible()
        for role, number in (("Ouders", "2"), ("Kinderen", "1"), ("Grootouders", "2"), ("Vrienden", "2")):
            await anna.get_by_label(f"{role}: Gekomen", exact=True).fill(number)
        await anna.get_by_label("Alle ouders met gezag waren er").check()
        await checked(anna, "coordinator conference planned")
        await anna.get_by_role("button", name="De conferentie is gehouden").click()
        await until_shown(anna, lambda p: p.get_by_label("De centrale vraag"), "the plan form")
        await expect(anna.get_by_text("Fase: Conferentie gehouden")).to_be_visible()

        await anna.get_by_label("De centrale vraag").fill("Hoe zorgen we samen dat de kinderen veilig opgroeien?")
        await take_down(anna, 0, "Oma brengt de kinderen naar school.", "Opa of oma", "Steun uit het netwerk", "2027-03-01", FROM_THE_REFERRAL)
        await take_down(anna, 1, "Schuldhulp aanvragen.", "Hulp van een instantie", "Hulp van een instantie", "2027-01-15", None, "debt_counselling")
        await checked(anna, "coordinator takes down the plan")
        await anna.get_by_role("button", name="Opslaan en het plan presenteren").click()
        await expect(anna.get_by_text("Stand: Plan gepresenteerd, wacht op beoordeling")).to_be_visible()

        await professional.reload()
        requirement = professional.get_by_role("row").filter(has_text=SET_BEFORE)
        await expect(requirement).to_contain_text("Niet beantwoord")
        await expect(professional.get_by_role("row").filter(has_text=FROM_THE_REFERRAL)).to_contain_text("Oma brengt de kinderen naar school.")
        await checked(professional, "professional reviews")
        await professional.get_by_role("button", name="Het plan beoordelen").click()
        await expect(professional.get_by_role("status")).to_contain_text("Er is om een herziening gevraagd")
        await expect(professional.get_by_text("Stand: Herziening gevraagd")).to_be_visible()
        await checked(professional, "professional asked for a revision")

        await anna.reload()
        await expect(anna.get_by_text("Stand: Herziening gevraagd")).to_be_visible()
        await take_down(anna, 2, "Oom is er elke avond als vader thuis is.", "Ander familielid", "Steun uit het netwerk", "2027-03-01", SET_BEFORE)
        await checked(anna, "coordinator revises the plan")
        await anna.get_by_role("button", name="Opslaan en het plan presenteren").click()
        await expect(anna.get_by_text("Stand: Plan gepresenteerd, wacht op beoordeling")).to_be_visible()

        await professional.reload()
        await expect(professional.get_by_role("row").filter(has_text=SET_BEFORE)).to_contain_text("Oom is er elke avond als vader thuis is.")
        await professional.get_by_role("button", name="Het plan beoordelen").click()
        await expect(professional.get_by_role("status")).to_have_text("Het plan is geaccepteerd.")
        await expect(professional.get_by_text("Stand: Plan geaccepteerd")).to_be_visible()
        await checked(professional, "professional accepted")

        await until_shown(funder, lambda p: p.locator(f'[data-figure="plans"]:text-is("{plans_before + 1}")'), "one plan more")
        await checked(funder, "funder report after")
        download = funder.wait_for_event("download")
        await funder.get_by_role("link", name="Downloaden als CSV").click()
        csv = (await (await download).path()).read_text()
        assert f"plans,{plans_before + 1}," in csv

        await anna.reload()
        await anna.get_by_role("button", name="Een code voor de familie maken").click()
        code = (await anna.get_by_label("Gezinscode").inner_text()).strip()
        await checked(anna, "coordinator family code")
        family = await (await browser.new_context()).new_page()
        await family.goto(f"{portal}/gezin")
        await family.get_by_label("Code van uw coördinator").fill(code)
        await family.get_by_role("button", name="Open ons plan").click()
        await family.get_by_role("heading", name="Ons plan", level=1).wait_for()
        await expect(family.get_by_role("cell", name="Oom is er elke avond als vader thuis is.")).to_be_visible()
        await expect(family.get_by_role("listitem").filter(has_text=SET_BEFORE)).to_be_visible()
        await checked(family, "family reads the accepted plan")

        ops = await signed_in(browser, portal, "ops-demo", "Beheer")
        await expect(ops.get_by_role("row").filter(has_text="coord-anna")).to_be_visible()
        await ops.get_by_label("Coördinatornummer").fill("coord-elif")
        await ops.get_by_label(re.compile("^Provincies")).fill("NH UT")
        await ops.get_by_label(re.compile("^Talen")).fill("nl tr")
        await ops.get_by_label("Niet beschikbaar vanaf (niet verplicht)").fill("2027-07-01")
        await ops.get_by_label("Niet beschikbaar tot en met").fill("2027-07-31")
        await ops.get_by_role("button", name="De coördinator opslaan").click()
        await expect(ops.get_by_role("row").filter(has_text="coord-elif")).to_contain_text("1 juli 2027 – 31 juli 2027")
        await ops.get_by_label("Zaaknummer").fill(case_id)
        await ops.get_by_role("button", name="Tonen wie wat deed").click()
        audit = ops.locator("#audit")
        await expect(audit.get_by_role("row").filter(has_text="gezinsvoogd-ut").first).to_be_visible()
        await expect(audit.get_by_role("row").filter(has_text="coord-bram").first).to_contain_text("refused")
        await checked(ops, "operations")

        await anna.get_by_role("button", name="Afmelden").click()
        await anna.get_by_role("link", name="Aanmelden voor uw werk").wait_for()
        await anna.goto(f"{portal}/coordinator")  # signed out: the page sends her to sign in again
        await anna.get_by_role("button", name=re.compile("coord-anna")).wait_for()
        assert not anna.url.startswith(portal)


async def take_down(page: Page, row: int, what: str, who: str, kind: str, by_when: str, answers: str | None, category: str = "") -> None:
    """One agreement of the plan in row `row` of the form: what, who by role, by when, which requirement it answers."""
    agreement = page.get_by_role("group", name=f"Afspraak {row + 1}")
    await agreement.get_by_label("Wat", exact=True).fill(what)
    await agreement.get_by_label("Wie (naar rol)").select_option(label=who)
    await agreement.get_by_label("Soort", exact=True).select_option(label=kind)
    if category:
        await agreement.get_by_label(re.compile("Soort professionele hulp")).fill(category)
    await agreement.get_by_label("Wanneer klaar").fill(by_when)
    if answers:
        await agreement.get_by_label(answers).check()
