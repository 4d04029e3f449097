"""Where the real RabbitMQ, MongoDB-protocol server and OpenID Connect issuer come from.

1. RABBITMQ_URL / MONGODB_URL / KRING_OIDC_ISSUER when set (CI and scripts/test.sh always set
   them; tests/conftest.py keeps the issuer as TEST_OIDC_ISSUER);
2. else testcontainers (rabbitmq:3.10-management, mongo:7, ghcr.io/navikt/mock-oauth2-server:3.0.1
   with deploy/oidc-local's configuration) when a Docker engine answers;
3. else the integration tests are skipped, saying why — except under CI=true, where a missing
   server is a failure: CI must never go green by skipping the real-server tests.
"""

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SKIP_REASON = (
    "no {what}: set {env} (scripts/infra.sh starts a local server and prints it) "
    "or make a Docker engine available for testcontainers"
)


def _unavailable(what: str, env: str) -> None:
    reason = SKIP_REASON.format(what=what, env=env)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@contextmanager
def rabbitmq_url() -> Iterator[str]:
    if url := os.environ.get("RABBITMQ_URL"):
        yield url
        return
    if not _docker_available():
        _unavailable("RabbitMQ", "RABBITMQ_URL")
    from testcontainers.rabbitmq import RabbitMqContainer

    definitions = Path(__file__).resolve().parents[2] / "deploy" / "rabbitmq" / "definitions.development.json"
    image = RabbitMqContainer("rabbitmq:3.10-management").with_volume_mapping(str(definitions), "/tmp/kring-definitions.json")
    with image as container:
        # the parties' users, as scripts/infra.sh loads them into the local broker
        code, output = container.exec(["rabbitmqctl", "import_definitions", "/tmp/kring-definitions.json"])
        assert code == 0, output
        host = container.get_container_host_ip()
        port = container.get_exposed_port(container.port)
        yield f"amqp://{container.username}:{container.password}@{host}:{port}/"


@contextmanager
def mongodb_url() -> Iterator[str]:
    if url := os.environ.get("MONGODB_URL"):
        yield url
        return
    if not _docker_available():
        _unavailable("MongoDB-protocol server", "MONGODB_URL")
    from testcontainers.mongodb import MongoDbContainer

    with MongoDbContainer("mongo:7") as container:
        yield container.get_connection_url()


@contextmanager
def oidc_issuer() -> Iterator[str]:
    """The development OpenID Connect issuer's URL (deploy/oidc-local), e.g. http://127.0.0.1:8090/kring."""
    if url := os.environ.get("TEST_OIDC_ISSUER"):
        yield url
        return
    if not _docker_available():
        _unavailable("OpenID Connect issuer", "KRING_OIDC_ISSUER")
    import httpx
    from testcontainers.core.container import DockerContainer

    local = Path(__file__).resolve().parents[2] / "deploy" / "oidc-local"
    config = (local / "config.json").read_text().replace('"./login.html"', '"/kring/login.html"')
    image = (
        DockerContainer("ghcr.io/navikt/mock-oauth2-server:3.0.1").with_env("JSON_CONFIG", config)
        .with_volume_mapping(str(local / "login.html"), "/kring/login.html").with_exposed_ports(8080)
    )  # fmt: skip
    with image as container:
        url = f"http://{container.get_container_host_ip()}:{container.get_exposed_port(8080)}/kring"
        for _ in range(120):
            try:
                if httpx.get(f"{url}/.well-known/openid-configuration", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise RuntimeError(f"the issuer container did not answer at {url} in 60 s")
        yield url
