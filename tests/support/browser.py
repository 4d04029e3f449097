"""Playwright in the machine's Debian Chromium (its own browser download fails here), an
axe-core check of every page, and a screenshot of each page kept as a test artefact."""

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = Path(os.environ.get("KRING_CHROMIUM", "/usr/bin/chromium"))
ARTEFACTS = Path(os.environ.get("KRING_ARTEFACTS_DIR", Path(__file__).resolve().parents[2] / ".data" / "artefacts" / "portal"))
# Without the background-networking flags Chromium keeps trying the closed network.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--lang=nl-NL",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
SERIOUS = {"serious", "critical"}


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: scripts/infra.sh installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def checked(page: Page, name: str) -> None:
    """The page as it stands: a screenshot `name`.png, and no serious or critical axe violation."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=ARTEFACTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png", full_page=True)
    results = await Axe().run(page)
    serious = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]]) for v in results.response["violations"] if v["impact"] in SERIOUS]
    assert not serious, f"{name}: {serious}"
