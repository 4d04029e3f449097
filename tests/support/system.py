"""The four services as separate OS processes on the real servers (end-to-end tests and
benchmarks), each connecting as its own broker user; the URL given (guest) only administers
(the demo's watcher, cleanup)."""

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from pymongo import MongoClient

from services.asyncapi import SERVICES
from services.ops import subscriber_queues
from shared.messaging.parties import OPS_USER, development_url, service_user
from shared.messaging.topology import Topology
from shared.settings import KringSettings

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def watching_driver(demo: Any, system: "System", rabbitmq_url: str) -> AsyncIterator[Any]:
    """The demo's driver of `system`'s services, watching the bus (what the bureaus hear back) until done."""
    driver = demo.Driver(system.urls, rabbitmq_url, 120, system.prefix)
    await driver.watch()
    try:
        yield driver
    finally:
        await driver.stop_watching()
        await driver.http.aclose()


def load_demo():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("kring_demo", REPO / "scripts" / "demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class System:
    """The four services as OS processes, in a namespace of their own."""

    def __init__(self, rabbitmq_url: str, mongodb_url: str, logs: Path, oidc_issuer: str | None = None) -> None:
        self.prefix = f"e2e{uuid.uuid4().hex[:8]}"
        self.rabbitmq_url, self.mongodb_url = rabbitmq_url, mongodb_url
        self.logs = logs
        self.environment = {
            **os.environ, "KRING_ENVIRONMENT": "development", "RABBITMQ_URL": rabbitmq_url, "MONGODB_URL": mongodb_url, "KRING_AMQP_PREFIX": self.prefix,
            "KRING_MONGODB_DATABASE_PREFIX": self.prefix, "KRING_HTTP_HOST": "127.0.0.1", "KRING_LOG_LEVEL": "WARNING",
            "KRING_FOLLOWUP_INTERVAL_DAYS": "0.0001", "KRING_FOLLOWUP_SWEEP_SECONDS": "1", "KRING_PREFETCH": "8",
            "KRING_RELAY_SWEEP_SECONDS": "1", "KRING_RELAY_LEASE_SECONDS": "5",
            # the limit is per client address, and every simulated family writes from 127.0.0.1
            "KRING_PUBLIC_RATE_LIMIT": "1000/minute", "KRING_DATABASE_TIME_SECONDS": "20",
            # staff sign in there (the portal) and the services accept its tokens
            **({"KRING_OIDC_ISSUER": oidc_issuer} if oidc_issuer else {}),
        }  # fmt: skip
        self.ports = {service: free_port() for service in SERVICES}
        self.urls = {service: f"http://127.0.0.1:{port}" for service, port in self.ports.items()}
        # each process's Prometheus /metrics, on a port of its own (replica 0 of each service)
        self.metrics_urls = {service: f"http://127.0.0.1:{free_port()}/metrics" for service in SERVICES}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, service: str, replica: int = 0, rabbitmq_url: str | None = None) -> str:
        """Start a replica of `service` (replica 0 answers on `urls[service]`), on another
        node of a RabbitMQ cluster if `rabbitmq_url` says so; its name."""
        name = service if replica == 0 else f"{service}-{replica}"
        port = self.ports[service] if replica == 0 else free_port()
        metrics_port = self.metrics_urls[service].rsplit(":", 1)[1].split("/")[0] if replica == 0 else str(free_port())
        log = (self.logs / f"{name}.log").open("a")
        # each service as its own broker user (deploy/rabbitmq/definitions.development.json)
        broker = development_url(rabbitmq_url or self.rabbitmq_url, service_user(service))
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"], cwd=REPO,
            env={**self.environment, "KRING_HTTP_PORT": str(port), "KRING_METRICS_PORT": metrics_port, "RABBITMQ_URL": broker},
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._wait_until_answering(f"http://127.0.0.1:{port}/health/ready", name)
        return name

    def start_portal(self) -> str:
        """The people's portal (services/portal) in front of these services; its address."""
        port = free_port()
        log = (self.logs / "portal.log").open("a")
        self.processes["portal"] = subprocess.Popen(
            [sys.executable, "-m", "services.portal"], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            env={**self.environment, "KRING_HTTP_PORT": str(port), "KRING_PORTAL_PUBLIC_URL": f"http://127.0.0.1:{port}",
                 **{f"KRING_PORTAL_{service.upper()}_URL": url for service, url in self.urls.items()}},
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        self._wait_until_answering(f"{url}/health/live", "portal")
        return url

    def _wait_until_answering(self, health: str, name: str) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(health, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (self.logs / f"{name}.log").read_text()[-2000:]
            time.sleep(0.3)

    def kill(self, name: str) -> None:
        """kill -9: no goodbye, no acks, no record of what was published."""
        process = self.processes.pop(name)
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

    def ops_settings(self) -> KringSettings:
        """What operations' tools (services.ops) need to look at this namespace."""
        return KringSettings(
            service_name="ops", amqp_prefix=self.prefix, mongodb_database_prefix=self.prefix,
            RABBITMQ_URL=development_url(self.rabbitmq_url, OPS_USER), MONGODB_URL=self.mongodb_url,
        )  # fmt: skip

    def remove_everything(self) -> None:
        """Delete this namespace's queues, exchanges and databases."""
        queues = subscriber_queues(self.ops_settings())
        asyncio.run(_delete_broker_objects(self.rabbitmq_url, [*queues, *(f"{q}.dlq" for q in queues), f"{self.prefix}.unrouted"], self.prefix))
        with MongoClient(self.mongodb_url) as client:
            for service in SERVICES:
                client.drop_database(f"{self.prefix}_{service}")


async def _delete_broker_objects(url: str, queues: list[str], prefix: str) -> None:
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    for queue in queues:
        await channel.queue_delete(queue)
    for exchange in Topology(prefix).exchanges():
        await channel.exchange_delete(exchange.name)
    await connection.close()
