"""End to end: the four services as separate OS processes on the real servers, 50 cases
from referral to OutcomeRecorded (with withdrawals, revisions, second meetings and cases
without a plan), every expected event exactly once per case."""

import importlib.util
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from services.asyncapi import SERVICES
from services.ops import subscriber_queues
from shared.messaging.topology import Topology
from shared.settings import KringSettings

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
REPO = Path(__file__).resolve().parents[2]
CASES = int(os.environ.get("KRING_E2E_CASES", "50"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def load_demo():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("kring_demo", REPO / "scripts" / "demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def system(rabbitmq_url: str, mongodb_url: str, tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    prefix = f"e2e{uuid.uuid4().hex[:8]}"
    environment = {
        **os.environ, "RABBITMQ_URL": rabbitmq_url, "MONGODB_URL": mongodb_url, "KRING_AMQP_PREFIX": prefix,
        "KRING_MONGODB_DATABASE_PREFIX": prefix, "KRING_HTTP_HOST": "127.0.0.1", "KRING_LOG_LEVEL": "WARNING",
        "KRING_FOLLOWUP_INTERVAL_DAYS": "0.0001", "KRING_FOLLOWUP_SWEEP_SECONDS": "1", "KRING_PREFETCH": "8",
        "KRING_RELAY_SWEEP_SECONDS": "1",
    }  # fmt: skip
    processes, urls = [], {}
    for service in SERVICES:
        port = free_port()
        urls[service] = f"http://127.0.0.1:{port}"
        log = (tmp_path / f"{service}.log").open("w")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"], cwd=REPO, env={**environment, "KRING_HTTP_PORT": str(port)},
                stdout=log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
    try:
        for service, url in urls.items():
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / f"{service}.log").read_text()[-2000:]
                time.sleep(0.3)
        yield urls, prefix
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        settings = KringSettings(service_name="ops", amqp_prefix=prefix, RABBITMQ_URL=rabbitmq_url)
        queues = subscriber_queues(settings)
        _delete_broker_objects(rabbitmq_url, [*queues, *(f"{q}.dlq" for q in queues), f"{prefix}.unrouted"], prefix)
        with MongoClient(mongodb_url) as client:
            for service in SERVICES:
                client.drop_database(f"{prefix}_{service}")


def _delete_broker_objects(url: str, queues: list[str], prefix: str) -> None:
    import asyncio

    import aio_pika

    async def delete() -> None:
        connection = await aio_pika.connect(url)
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in Topology(prefix).exchanges():
            await channel.exchange_delete(exchange.name)
        await connection.close()

    asyncio.run(delete())


def test_cases_travel_from_referral_to_outcome_through_four_processes(system: tuple[dict[str, str], str], rabbitmq_url: str) -> None:
    import asyncio

    urls, prefix = system
    demo = load_demo()
    made = asyncio.run(demo.run(CASES, 2026, urls, rabbitmq_url, timeout=240, quiet=True, prefix=prefix))
    failed = [(s.number, s.outcome) for s in made if s.outcome.startswith("failed")]
    assert failed == []
    kinds = Counter()
    for s in made:
        seen = Counter(kind for _, kind in s.events)
        optional = {kind: seen.pop(kind) for kind in s.optional if kind in seen}
        assert seen == Counter(s.expected), f"case {s.number} ({s.outcome}): {sorted(seen.elements())}"
        assert set(optional.values()) <= {1} and len(optional) in (0, len(s.optional)), f"case {s.number}: {optional}"
        kinds.update(["withdrawn"] * s.withdraws + ["revision"] * s.revision + ["second meeting"] * s.second_meeting + ["no plan"] * s.no_plan)
    assert all(kinds[k] >= 1 for k in ("withdrawn", "revision", "second meeting", "no plan")), kinds
    assert sum(s.outcome == "outcome recorded" for s in made) >= CASES * 0.6
