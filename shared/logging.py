"""structlog JSON logging with per-message context and personal-data redaction.

Every line is one JSON object on stdout. `bind_message_context` puts the event id,
type and correlation id of the message being handled on every line logged while it
is handled; `redact_personal_data` blanks known personal fields at any depth
(shared.privacy) so a handler that logs a whole document still leaks nothing.
"""

import logging
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

from .privacy import redact


def redact_personal_data(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    return redact(event_dict)


def configure_logging(service: str, level: str = "INFO", stream: Any = None) -> None:
    """Configure structlog and route the standard library's logging (uvicorn, pymongo,
    aio-pika) through the same redacting JSON pipeline."""
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_personal_data,
    ]
    structlog.configure(
        processors=[*shared_processors, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)

    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared_processors],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("faststream", "faststream.access", "uvicorn", "uvicorn.error", "uvicorn.access"):
        library_logger = logging.getLogger(name)
        library_logger.handlers.clear()  # their own handlers would bypass redaction
        library_logger.propagate = True
    # Per-message access lines cost ~30% throughput (FASTSTREAM_NOTES.md): debug only.
    logging.getLogger("faststream.access").setLevel(logging.WARNING)
    logging.getLogger("pymongo").setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)


def bind_message_context(**values: Any) -> Any:
    """Bind values to every log line until the returned token set is reset."""
    return structlog.contextvars.bound_contextvars(**values)
