import os

# Before anything builds settings: tests run in development mode (the generated key pair,
# API docs on, no Secure-only cookies over plain HTTP); a test that needs production says so.
os.environ.setdefault("KRING_ENVIRONMENT", "development")
# The development issuer scripts/infra.sh prints is for the tests that sign in (servers.oidc_issuer()),
# not for every settings object a test builds (a production one would refuse its http://).
if issuer := os.environ.pop("KRING_OIDC_ISSUER", None):
    os.environ.setdefault("TEST_OIDC_ISSUER", issuer)

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support import servers
from tests.support.harness import Harness


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    with servers.rabbitmq_url() as url:
        yield url


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    with servers.mongodb_url() as url:
        yield url


@pytest.fixture(scope="session")
def oidc_issuer() -> Iterator[str]:
    with servers.oidc_issuer() as url:
        yield url


@pytest.fixture
async def kring(rabbitmq_url: str, mongodb_url: str) -> AsyncIterator[Harness]:
    """In-process services on the real servers, in a namespace of this test's own."""
    harness = Harness(rabbitmq_url, mongodb_url)
    await harness.open()
    try:
        yield harness
    finally:
        await harness.close()
