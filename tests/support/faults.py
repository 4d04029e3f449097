"""Faults for the fault runs: restart the local RabbitMQ node, stop and start the local
MongoDB-protocol server. Only for servers running on this machine (CI and scripts/infra.sh);
`unavailable` says why they cannot be used otherwise."""

import shutil
import subprocess
import time

from tests.support.localmongo import LocalMongo


def unavailable(mongodb_url: str) -> str | None:
    """Why the servers cannot be faulted from here, or None."""
    if shutil.which("rabbitmqctl") is None or subprocess.run(["rabbitmqctl", "-q", "status"], capture_output=True).returncode:
        return "no local RabbitMQ node to restart (rabbitmqctl status fails)"
    if LocalMongo.find(mongodb_url) is None:
        return f"no local mongo-local process (scripts/infra.sh) serving {mongodb_url}"
    return None


def restart_rabbitmq() -> float:
    """Stop the node, start it again; seconds it was down."""
    started = time.monotonic()
    subprocess.run(["rabbitmqctl", "-q", "stop"], check=True, timeout=120, capture_output=True)
    for _ in range(10):
        subprocess.run(["rabbitmq-server", "-detached"], capture_output=True, timeout=60)
        if subprocess.run(["rabbitmqctl", "-q", "await_startup", "--timeout", "60"], capture_output=True).returncode == 0:
            return time.monotonic() - started
        time.sleep(2)
    raise RuntimeError("RabbitMQ did not come back")
