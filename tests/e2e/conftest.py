import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from services.asyncapi import SERVICES
from tests.support.system import System


@contextmanager
def running(system: System) -> Iterator[System]:
    """The four services of `system` started (as its environment says), stopped and removed after."""
    try:
        for service in SERVICES:
            system.start(service)
        yield system
    finally:
        system.stop()
        if os.environ.get("KRING_KEEP_DATA") != "1":  # kept: to look into a failed run
            system.remove_everything()


@pytest.fixture
def system(rabbitmq_url: str, mongodb_url: str, tmp_path: Path) -> Iterator[System]:
    with running(System(rabbitmq_url, mongodb_url, tmp_path)) as started:
        yield started


@pytest.fixture
def staff_system(rabbitmq_url: str, mongodb_url: str, oidc_issuer: str, tmp_path: Path) -> Iterator[System]:
    """The four services trusting the development OpenID Connect issuer staff sign in at."""
    with running(System(rabbitmq_url, mongodb_url, tmp_path, oidc_issuer)) as started:
        yield started
