"""Watching which queries a store sends: on FerretDB v1 any query but a lookup by `_id`
reads the whole collection, so a hot path must send none."""

from typing import Any


class QueriesOnly:
    """A collection that records every query other than a lookup by `_id`."""

    def __init__(self, collection: Any, queries: list[str]) -> None:
        self._collection, self._queries = collection, queries

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)

    def find(self, query: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        self._queries.append(f"{self._collection.name}.find {query}")
        return self._collection.find(query, *args, **kwargs)

    async def find_one(self, query: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if set(query) != {"_id"} or not isinstance(query["_id"], str):
            self._queries.append(f"{self._collection.name}.find_one {query}")
        return await self._collection.find_one(query, *args, **kwargs)
