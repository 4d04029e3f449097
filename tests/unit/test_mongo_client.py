"""How every service's MongoDB client writes (no server: the client connects on first use)."""

from pymongo.write_concern import WriteConcern

from shared.mongo import create_client
from shared.settings import KringSettings


def test_writes_are_acknowledged_from_the_journal_of_a_majority() -> None:
    client = create_client(KringSettings(service_name="example"))
    assert client.write_concern == WriteConcern(w="majority", j=True)
