"""The `_id` lookup index the fault runs add to a local FerretDB (tests.support.faults):
its own lookups by `_id` use it, and it changes no answer."""

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing

import pytest
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from services.ops import ID_LOOKUP_INDEX
from services.ops import main as ops
from tests.support.faults import FerretDB


@pytest.fixture
def ferretdb(mongodb_url: str) -> FerretDB:
    running = FerretDB.find(mongodb_url)
    if running is None or running.data_dir() is None:
        pytest.skip(f"no local FerretDB with the SQLite backend listening for {mongodb_url}")
    return running


@pytest.fixture
def database(mongodb_url: str) -> Iterator[Database]:  # type: ignore[type-arg]
    with MongoClient(mongodb_url) as client:
        name = f"kring_test_lookup_{uuid.uuid4().hex[:8]}"
        try:
            yield client[name]
        finally:
            client.drop_database(name)


def plan_of_lookup(database: Database, document_id: str) -> str:  # type: ignore[type-arg]
    explained = database.command("explain", {"find": "versions", "filter": {"_id": document_id}})
    return json.dumps(explained["queryPlanner"])


def test_reads_by_id_use_the_added_index_and_answer_as_before(ferretdb: FerretDB, database: Database) -> None:  # type: ignore[type-arg]
    versions = database.versions
    versions.insert_many([{"_id": f"case-{n:05d}:{1:010d}", "key": f"case-{n:05d}", "version": 1} for n in range(2000)])
    assert "SCAN" in plan_of_lookup(database, "case-00007:0000000001"), "FerretDB's own _id index is not used"

    assert ferretdb.index_ids(database.name) == [f"{database.name}.{table}" for table in sqlite_tables(ferretdb, database.name)]
    assert ferretdb.index_ids(database.name) == [], "indexing twice changes nothing"

    # an explain is planned on the schema its connection last read; a real query reads the new one
    assert versions.find_one({"_id": "case-00007:0000000001"}) is not None
    assert f"USING INDEX {sqlite_tables(ferretdb, database.name)[0]}{ID_LOOKUP_INDEX}" in plan_of_lookup(database, "case-00007:0000000001")
    assert versions.find_one({"_id": "case-01999:0000000001"}) == {"_id": "case-01999:0000000001", "key": "case-01999", "version": 1}
    assert versions.find_one({"_id": "case-01999:0000000002"}) is None
    versions.insert_one({"_id": "case-01999:0000000002", "key": "case-01999", "version": 2})
    assert versions.find_one({"_id": "case-01999:0000000002"})["version"] == 2  # type: ignore[index]
    with pytest.raises(DuplicateKeyError):
        versions.insert_one({"_id": "case-01999:0000000002", "key": "case-01999", "version": 2})
    assert versions.delete_one({"_id": "case-00000:0000000001"}).deleted_count == 1
    assert versions.find_one({"_id": "case-00000:0000000001"}) is None
    assert versions.count_documents({}) == 2000
    assert [index["name"] for index in versions.list_indexes()] == ["_id_"], "FerretDB does not know of it"


def sqlite_tables(ferretdb: FerretDB, database_name: str) -> list[str]:
    data = ferretdb.data_dir()
    assert data is not None
    with closing(sqlite3.connect(data / f"{database_name}.sqlite")) as connection:
        return sorted(row[0] for row in connection.execute("SELECT table_name FROM _ferretdb_collections"))


def test_operations_add_the_index_from_the_command_line(ferretdb: FerretDB, database: Database, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[type-arg]
    database.versions.insert_one({"_id": "case-00001:0000000001"})
    command = ["ferretdb-index", str(ferretdb.data_dir()), "--prefix", database.name]
    assert ops(command) == 0
    assert capsys.readouterr().out.splitlines() == [f"{database.name}.{table}" for table in sqlite_tables(ferretdb, database.name)]
    assert ops(command) == 0
    assert "has the index already" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        ops(["ferretdb-index", "/no/such/directory"])
