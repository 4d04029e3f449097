"""Which database errors mean "the database is away, try again" (a 503, a retried message)
and which are real failures (a 500, a message dead-lettered after the delivery limit)."""

from pymongo.errors import AutoReconnect, DuplicateKeyError, OperationFailure, ServerSelectionTimeoutError

from shared.mongo import database_unavailable

def test_mongodb_shutting_down_and_lost_connections_mean_the_database_is_away() -> None:
    assert database_unavailable(OperationFailure("interrupted at shutdown", 11600))
    assert database_unavailable(OperationFailure("shutdown in progress", 91))
    assert database_unavailable(AutoReconnect("connection closed"))
    assert database_unavailable(ServerSelectionTimeoutError("no servers"))


def test_other_internal_errors_and_refusals_are_failures() -> None:
    assert not database_unavailable(OperationFailure("[handler] something broke", 1))
    assert not database_unavailable(DuplicateKeyError("E11000 duplicate key", 11000))
    assert not database_unavailable(OperationFailure("unknown operator: $foo", 2))
    assert not database_unavailable(ValueError("context canceled"))
