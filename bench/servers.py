"""The servers every benchmark runs against: RABBITMQ_URL and MONGODB_URL (as
`scripts/infra.sh --print-env` sets them), else the local defaults."""

import os


def server_urls() -> tuple[str, str]:
    return (
        os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/"),
    )
