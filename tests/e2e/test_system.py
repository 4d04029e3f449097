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


class System:
    """The four services as OS processes, in a namespace of their own."""

    def __init__(self, rabbitmq_url: str, mongodb_url: str, logs: Path) -> None:
        self.prefix = f"e2e{uuid.uuid4().hex[:8]}"
        self.logs = logs
        self.environment = {
            **os.environ, "RABBITMQ_URL": rabbitmq_url, "MONGODB_URL": mongodb_url, "KRING_AMQP_PREFIX": self.prefix,
            "KRING_MONGODB_DATABASE_PREFIX": self.prefix, "KRING_HTTP_HOST": "127.0.0.1", "KRING_LOG_LEVEL": "WARNING",
            "KRING_FOLLOWUP_INTERVAL_DAYS": "0.0001", "KRING_FOLLOWUP_SWEEP_SECONDS": "1", "KRING_PREFETCH": "8",
            "KRING_RELAY_SWEEP_SECONDS": "1", "KRING_RELAY_LEASE_SECONDS": "5",
        }  # fmt: skip
        self.ports = {service: free_port() for service in SERVICES}
        self.urls = {service: f"http://127.0.0.1:{port}" for service, port in self.ports.items()}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, service: str) -> None:
        log = (self.logs / f"{service}.log").open("a")
        self.processes[service] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"], cwd=REPO,
            env={**self.environment, "KRING_HTTP_PORT": str(self.ports[service])}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.urls[service]}/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (self.logs / f"{service}.log").read_text()[-2000:]
            time.sleep(0.3)

    def kill(self, service: str) -> None:
        """kill -9: no goodbye, no acks, no outbox clearing."""
        process = self.processes.pop(service)
        process.kill()
        process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def system(rabbitmq_url: str, mongodb_url: str, tmp_path: Path) -> Iterator[System]:
    running = System(rabbitmq_url, mongodb_url, tmp_path)
    try:
        for service in SERVICES:
            running.start(service)
        yield running
    finally:
        running.stop()
        settings = KringSettings(service_name="ops", amqp_prefix=running.prefix, RABBITMQ_URL=rabbitmq_url)
        queues = subscriber_queues(settings)
        prefix = running.prefix
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


def check_every_case(made: list, cases: int) -> None:  # type: ignore[type-arg]
    failed = [(s.number, s.outcome) for s in made if s.outcome.startswith("failed")]
    assert failed == []
    kinds: Counter[str] = Counter()
    for s in made:
        seen = Counter(kind for _, kind in s.events)
        optional = {kind: seen.pop(kind) for kind in s.optional if kind in seen}
        assert seen == Counter(s.expected), f"case {s.number} ({s.outcome}): {sorted(seen.elements())}"
        assert set(optional.values()) <= {1} and len(optional) in (0, len(s.optional)), f"case {s.number}: {optional}"
        kinds.update(["withdrawn"] * s.withdraws + ["revision"] * s.revision + ["second meeting"] * s.second_meeting + ["no plan"] * s.no_plan)
    assert all(kinds[k] >= 1 for k in ("withdrawn", "revision", "second meeting", "no plan")), kinds
    assert sum(s.outcome == "outcome recorded" for s in made) >= cases * 0.6


def test_cases_travel_from_referral_to_outcome_through_four_processes(system: System, rabbitmq_url: str) -> None:
    import asyncio

    demo = load_demo()
    made = asyncio.run(demo.run(CASES, 2026, system.urls, rabbitmq_url, timeout=240, quiet=True, prefix=system.prefix))
    check_every_case(made, CASES)


def test_nothing_is_lost_or_doubled_when_every_service_is_killed_mid_run(system: System, rabbitmq_url: str) -> None:
    """The quick fault run: each service is killed with SIGKILL while cases flow, and
    restarted; every case still ends where it should, every event applied once in effect."""
    import asyncio

    demo = load_demo()
    stats: dict[str, int] = {}
    kills = []

    async def chaos() -> None:
        for service in ("scheduling", "plans", "referral", "followup"):
            await asyncio.sleep(3)
            system.kill(service)
            kills.append(service)
            await asyncio.sleep(1)
            await asyncio.to_thread(system.start, service)

    async def run() -> list:  # type: ignore[type-arg]
        faults = asyncio.create_task(chaos())
        made = await demo.run(30, 99, system.urls, rabbitmq_url, timeout=240, quiet=True, prefix=system.prefix, stats=stats)
        await faults
        return made

    made = asyncio.run(run())
    assert kills == ["scheduling", "plans", "referral", "followup"]
    check_every_case(made, 30)
    print(f"\nfault run: 30 cases, {len(kills)} kill -9 + restart, lost 0, duplicated effects 0, "
          f"requests refused while a service was down {stats['refused']}, events republished after a kill "
          f"{stats['republished']}, requests that had taken effect before a kill {stats['retried_after_crash']}")
    assert stats["refused"] > 0, "the kills hit live traffic"
