import os
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
        if os.environ.get("KRING_KEEP_DATA") != "1":  # kept: to look into a failed run
            running.remove_everything()
