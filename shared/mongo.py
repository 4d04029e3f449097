"""MongoDB access: client factory, index bootstrap, ping.

PyMongo's native asyncio client (`AsyncMongoClient`). Works against MongoDB and
against FerretDB v1, so no multi-document transactions, change streams, $lookup or
$facet: every state change is a single-document update (see shared.store).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, OperationFailure

from .settings import KringSettings


# What a server answers for work it dropped because it is stopping: MongoDB's
# InterruptedAtShutdown, InterruptedDueToReplStateChange and ShutdownInProgress, and
# FerretDB's InternalError "context canceled" for the queries it cancels on SIGTERM.
INTERRUPTED_CODES = frozenset({11600, 11602, 91})
FERRETDB_INTERNAL_ERROR = 1


def database_unavailable(error: BaseException) -> bool:
    """The database is away or going away (retry later), as opposed to refusing the request."""
    if isinstance(error, ConnectionFailure):
        return True
    if isinstance(error, OperationFailure):
        return error.code in INTERRUPTED_CODES or (error.code == FERRETDB_INTERNAL_ERROR and "context canceled" in str(error))
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


def create_client(settings: KringSettings) -> AsyncMongoClient:
    """A client that has not connected yet (it connects on first use)."""
    return AsyncMongoClient(
        settings.mongodb_url,
        tz_aware=True,
        appname=f"kring-{settings.service_name}",
        serverSelectionTimeoutMS=settings.mongodb_timeout_ms,
        connectTimeoutMS=settings.mongodb_timeout_ms,
    )


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
