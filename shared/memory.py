"""The aggregate store in memory, for unit tests of handlers and application services: the
same promises as MongoStore (tests/contract/store_contract.py runs against both), nothing
kept after the process ends.

Each operation yields to the event loop once before it acts, so concurrent writers
interleave between their read and their write as they do against a server; the act itself
is atomic, as a single-document write is on MongoDB.
"""

import asyncio
import copy
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from shared.store import AggregateStore, AlternateKeyTaken, Filter, S, Write, new_document


def _values(document: Any, path: str) -> list[Any]:
    """The values at a dotted path; a list on the way matches by any of its elements, as in
    a MongoDB query."""
    found = [document]
    for part in path.split("."):
        step = []
        for value in found:
            if isinstance(value, Mapping) and part in value:
                step.append(value[part])
            elif isinstance(value, list):
                step += [item[part] for item in value if isinstance(item, Mapping) and part in item]
        found = step
    return [item for value in found for item in (value if isinstance(value, list) else [value])] + [
        value for value in found if isinstance(value, list)
    ]


def _holds(values: list[Any], condition: Any) -> bool:
    if isinstance(condition, Mapping) and condition and all(str(op).startswith("$") for op in condition):
        for operator, operand in condition.items():
            if operator == "$in":
                ok = any(value in operand for value in values)
            elif operator == "$lte":
                ok = any(value is not None and value <= operand for value in values)
            else:
                raise NotImplementedError(f"the memory store does not know {operator}")
            if not ok:
                return False
        return True
    return condition in values


def matches(document: Mapping[str, Any], query: Filter) -> bool:
    return all(_holds(_values(document, path), condition) for path, condition in query.items())


class MemoryStore(AggregateStore[S]):
    def __init__(self, name: str, state_type: type[S], *, documents: dict[str, dict[str, Any]] | None = None, **options: Any) -> None:
        """`documents`: the aggregates, shared by stores that stand for replicas of one service."""
        super().__init__(name, state_type, **options)
        self.documents: dict[str, dict[str, Any]] = {} if documents is None else documents

    async def _read(self, key: str) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        document = self.documents.get(key)
        return copy.deepcopy(document) if document else None

    async def _read_by_alternate_key(self, value: str) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        found = [document for document in self.documents.values() if document.get("alternate_key") == value]
        return copy.deepcopy(found[0]) if found else None

    async def _find(self, query: Filter) -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        return [copy.deepcopy(document) for document in self.documents.values() if matches(document, query)]

    async def _insert(self, write: Write) -> bool:
        await asyncio.sleep(0)
        if write.key in self.documents:
            return False
        if write.alternate_key is not None and self._holder_of(write.alternate_key) is not None:
            raise AlternateKeyTaken(f"{self.name}: the alternate key is taken")
        self.documents[write.key] = copy.deepcopy(new_document(write))
        return True

    async def _update(self, write: Write) -> bool:
        await asyncio.sleep(0)
        document = self.documents.get(write.key)
        if document is None or document["version"] != write.version - 1:
            return False
        if write.alternate_key is not None and self._holder_of(write.alternate_key) not in (None, write.key):
            raise AlternateKeyTaken(f"{self.name}: the alternate key is taken")
        document.update(version=write.version, state=copy.deepcopy(write.state), updated_at=write.at)
        if write.alternate_key is not None:
            document["alternate_key"] = write.alternate_key
        elif self.alternate_key is not None:
            document.pop("alternate_key", None)
        if write.applied:
            document["applied"] = [*document["applied"], write.applied][-self.MAX_APPLIED :]
        document["outbox"] = [*document["outbox"], *copy.deepcopy(write.outbox)]
        return True

    def _holder_of(self, alternate_key: str) -> str | None:
        return next((key for key, document in self.documents.items() if document.get("alternate_key") == alternate_key), None)

    async def outbox_due(self, before: datetime) -> list[str]:
        await asyncio.sleep(0)
        return sorted(key for key, document in self.documents.items() if any(entry["at"] <= before for entry in document["outbox"]))

    async def lease_outbox(self, key: str, owner: str, *, now: datetime, until: datetime) -> list[dict[str, Any]] | None:
        await asyncio.sleep(0)
        document = self.documents.get(key)
        if document is None:
            return None
        lease = document.get("lease")
        if lease and lease["owner"] != owner and lease["until"] >= now:
            return None
        document["lease"] = {"owner": owner, "until": until}
        return sorted(copy.deepcopy(document["outbox"]), key=lambda entry: (entry["at"], entry["order"]))

    async def settle(self, published: Mapping[str, Sequence[str]], owner: str | None = None) -> None:
        await asyncio.sleep(0)
        for key, ids in published.items():
            document = self.documents.get(key)
            if document is None:
                continue
            document["outbox"] = [entry for entry in document["outbox"] if entry["id"] not in ids]
            if owner is not None and (document.get("lease") or {}).get("owner") == owner:
                document.pop("lease")

    async def outbox_size(self) -> int:
        return sum(len(document["outbox"]) for document in self.documents.values())

    async def outbox_oldest(self) -> datetime | None:
        return min((entry["at"] for document in self.documents.values() for entry in document["outbox"]), default=None)


class MemoryStorage:
    """A service's database in memory, for its wiring point (`create_app(storage=...)`): one
    MemoryStorage given to two apps makes them replicas over the same aggregates."""

    def __init__(self) -> None:
        self.collections: dict[str, dict[str, dict[str, Any]]] = {}
        self.audit: list[dict[str, Any]] = []  # the audit log (shared.audit), append-only

    def store(self, name: str, state_type: type[BaseModel], **options: Any) -> MemoryStore[Any]:
        return MemoryStore(name, state_type, documents=self.collections.setdefault(name, {}), **options)
