"""MongoDB access: client factory, index bootstrap, ping.

PyMongo's native asyncio client (`AsyncMongoClient`), for MongoDB 7 in production and the
local mongo-java-server here (deploy/mongo-local): no multi-document transactions or change
streams, so every state change is a single-document write (see shared.store).
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, OperationFailure

from .settings import KringSettings

# What a server answers for work it dropped because it is stopping: MongoDB's
# InterruptedAtShutdown, InterruptedDueToReplStateChange and ShutdownInProgress.
INTERRUPTED_CODES = frozenset({11600, 11602, 91})


def database_unavailable(error: BaseException) -> bool:
    """The database is away or going away (retry later), as opposed to refusing the request."""
    if isinstance(error, ConnectionFailure):
        return True
    if isinstance(error, OperationFailure):
        return error.code in INTERRUPTED_CODES
    return False


@dataclass(frozen=True)
class IndexSpec:
    collection: str
    keys: Sequence[tuple[str, int]]
    unique: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return "_".join(f"{key}_{direction}" for key, direction in self.keys)


def create_client(settings: KringSettings, listeners: Sequence[monitoring.CommandListener] = ()) -> AsyncMongoClient:
    """A client that has not connected yet (it connects on first use). A write is
    acknowledged once it is in the journal of a majority of the replica set (on a single
    server: its own journal): an acknowledged state change and its outbox survive a crash."""
    return AsyncMongoClient(
        settings.mongodb_url,
        tz_aware=True,
        w="majority",
        journal=True,
        appname=f"kring-{settings.service_name}",
        serverSelectionTimeoutMS=settings.mongodb_timeout_ms,
        connectTimeoutMS=settings.mongodb_timeout_ms,
        event_listeners=list(listeners),
    )


class DatabaseTime(monitoring.CommandListener):
    """How long the database took, per command and collection, as this client saw it
    (waiting included). Keeps names and durations only, never a filter or a document."""

    def __init__(self) -> None:
        self._running: dict[int, tuple[str, str]] = {}
        self._micros: Counter[tuple[str, str]] = Counter()
        self._calls: Counter[tuple[str, str]] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get("collection" if event.command_name == "getMore" else event.command_name)
        self._running[event.request_id] = (event.command_name, target if isinstance(target, str) else "-")

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._finished(event.request_id, event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._finished(event.request_id, event.duration_micros)

    def _finished(self, request_id: int, micros: int) -> None:
        if (command := self._running.pop(request_id, None)) is not None:
            self._micros[command] += micros
            self._calls[command] += 1

    def take(self, top: int = 8) -> dict[str, str]:
        """The commands that took longest since the last take, longest first:
        {"find coordinators": "120 calls, 3.4 s, 28 ms each"}; then starts again."""
        taken = {
            f"{command} {collection}": f"{self._calls[key]} calls, {micros / 1e6:.1f} s, {micros / 1e3 / self._calls[key]:.0f} ms each"
            for key, micros in self._micros.most_common(top)
            for command, collection in [key]
        }
        self._micros.clear()
        self._calls.clear()
        return taken


async def ensure_indexes(db: AsyncDatabase, specs: Iterable[IndexSpec]) -> None:
    """Create missing indexes; idempotent, safe to run from every replica at start."""
    for spec in specs:
        await db[spec.collection].create_index(
            list(spec.keys), name=spec.name, unique=spec.unique, **spec.options
        )


async def ping(client: AsyncMongoClient) -> bool:
    try:
        await client.admin.command("ping")
    except Exception:
        return False
    return True
