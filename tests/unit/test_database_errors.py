"""Which database errors mean "the database is away, try again" (a 503, a retried message)
and which are real failures (a 500, a message dead-lettered after the delivery limit)."""

from pymongo.errors import AutoReconnect, DuplicateKeyError, OperationFailure, ServerSelectionTimeoutError

from shared.mongo import database_unavailable

# What FerretDB v1.24.2 answered a find it cancelled while stopping (from its log, in the
# 150-case restart run that turned it into an HTTP 500).
FERRETDB_CANCELLED = {
    "ok": 0.0,
    "errmsg": "[msg_find.go:344 handler.handleMaxTimeMSError] [collection.go:94 sqlite.(*collection).Query] context canceled",
    "code": 1,
    "codeName": "InternalError",
}


def test_a_query_ferretdb_cancelled_while_stopping_means_the_database_is_away() -> None:
    assert database_unavailable(OperationFailure(FERRETDB_CANCELLED["errmsg"], FERRETDB_CANCELLED["code"], FERRETDB_CANCELLED))


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
