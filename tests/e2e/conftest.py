from collections.abc import Iterator
from pathlib import Path

import pytest

from services.asyncapi import SERVICES
from tests.support.system import System


@pytest.fixture
def system(rabbitmq_url: str, mongodb_url: str, tmp_path: Path) -> Iterator[System]:
    running = System(rabbitmq_url, mongodb_url, tmp_path)
    try:
        for service in SERVICES:
            running.start(service)
        yield running
    finally:
        running.stop()
        running.remove_everything()
