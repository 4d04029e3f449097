"""The deployment files are generated from one source each and stay in step with the code."""

import importlib.util
import json
import os
import re
from pathlib import Path
from types import ModuleType

import yaml

from services.asyncapi import SERVICES
from shared.contract.events import CATALOGUE
from shared.messaging.topology import Topology

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kubernetes_manifests_are_up_to_date_and_probe_every_service() -> None:
    generator = load(DEPLOY / "k8s" / "generate.py")
    for name, text in generator.files().items():
        assert (DEPLOY / "k8s" / name).read_text() == text, f"run: python deploy/k8s/generate.py ({name})"
    for service in SERVICES:
        deployment, _, scaler = yaml.safe_load_all((DEPLOY / "k8s" / f"{service}.yaml").read_text())
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
        assert scaler["spec"]["triggers"][0]["metadata"]["queueName"].startswith(f"kring.{service}.")


def test_the_scaling_queues_are_queues_the_services_consume() -> None:
    from services.ops import subscriber_queues
    from shared.settings import KringSettings

    generator = load(DEPLOY / "k8s" / "generate.py")
    queues = set(subscriber_queues(KringSettings(service_name="ops")))
    assert set(generator.SCALE_ON.values()) <= queues


def test_broker_definitions_are_up_to_date() -> None:
    generator = load(DEPLOY / "rabbitmq" / "definitions.py")
    for name, development in (("definitions.json", False), ("definitions.development.json", True)):
        published = json.loads((DEPLOY / "rabbitmq" / name).read_text())
        fresh = generator.definitions("/", "kring", development=development)
        assert published == fresh, f"run: python deploy/rabbitmq/definitions.py {'--development ' if development else ''}> deploy/rabbitmq/{name}"
    assert {e.name.removeprefix("kring.") for e in Topology("kring").exchanges()} == set(generator.EXCHANGES)


def test_every_kubernetes_service_is_configured_to_start_in_production(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from shared.settings import PSEUDONYMISING_SERVICES, SIGNING_SERVICES, KringSettings

    _, config_map, _ = yaml.safe_load_all((DEPLOY / "k8s" / "kring.yaml").read_text())
    for service in SERVICES:
        deployment, _, _ = yaml.safe_load_all((DEPLOY / "k8s" / f"{service}.yaml").read_text())
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        values = config_map["data"] | {env["name"]: env["value"] for env in container["env"] if "value" in env}
        if "KRING_SIGNING_KEY_FILE" in values:  # mounted from the Secret there; a stand-in here
            mounted = [mount["mountPath"] for mount in container["volumeMounts"]]
            assert any(values["KRING_SIGNING_KEY_FILE"].startswith(f"{path}/") for path in mounted)
            (tmp_path / "signing-key.pem").write_text("")
            values["KRING_SIGNING_KEY_FILE"] = str(tmp_path / "signing-key.pem")
        assert ("KRING_SIGNING_KEY_FILE" in values) == (service in SIGNING_SERVICES)
        if "KRING_PSEUDONYM_KEY_FILE" in values:  # likewise mounted from its Secret
            mounted = [mount["mountPath"] for mount in container["volumeMounts"]]
            assert any(values["KRING_PSEUDONYM_KEY_FILE"].startswith(f"{path}/") for path in mounted)
            (tmp_path / "pseudonym.key").write_bytes(os.urandom(32))
            values["KRING_PSEUDONYM_KEY_FILE"] = str(tmp_path / "pseudonym.key")
        assert ("KRING_PSEUDONYM_KEY_FILE" in values) == (service in PSEUDONYMISING_SERVICES)
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        settings = KringSettings(service_name=service)
        assert settings.environment == "production" and settings.insecurity() is None, (service, settings.insecurity())
        monkeypatch.delenv("KRING_SIGNING_KEY_FILE", raising=False)
        monkeypatch.delenv("KRING_PSEUDONYM_KEY_FILE", raising=False)


def test_the_kubernetes_portal_is_configured_to_start_in_production(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from services.portal.settings import PortalSettings

    _, config_map, _ = yaml.safe_load_all((DEPLOY / "k8s" / "kring.yaml").read_text())
    deployment, _ = yaml.safe_load_all((DEPLOY / "k8s" / "portal.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    values = config_map["data"] | {env["name"]: env["value"] for env in container["env"]}
    (mounted,) = [mount["mountPath"] for mount in container["volumeMounts"]]
    for name in ("KRING_PORTAL_SESSION_KEY_FILE", "KRING_PORTAL_OIDC_CLIENT_SECRET_FILE"):  # from the Secret there; stand-ins here
        assert values[name].startswith(f"{mounted}/")
        (tmp_path / name).write_bytes(os.urandom(32).hex().encode())
        values[name] = str(tmp_path / name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = PortalSettings()
    assert settings.environment == "production" and settings.insecurity() is None, settings.insecurity()
    assert set(settings.service_urls.values()) == {f"http://kring-{service}" for service in SERVICES}


def test_each_service_may_publish_exactly_the_events_it_produces() -> None:
    generator = load(DEPLOY / "rabbitmq" / "definitions.py")
    users = generator.permissions("kring")
    for event in CATALOGUE:
        assert event.producer() in SERVICES, event.name
        exchange = f"kring.{event.channel.value}"
        for service in SERVICES:
            write, _ = users[f"kring-{service}"]["topic"].get(exchange, ("^$", ".*"))
            allowed = re.fullmatch(write, _routing_key(event)) is not None
            assert allowed == (event.producer() == service), (service, event.name)
    for user, rules in users.items():
        if user.startswith("bureau-") and not user.endswith("-replies"):
            assert rules["topic"] == {"kring.intake": (r"^referral\.submit$", "^$")}
        if user.startswith("funder-"):
            assert rules["write"] == "^$" and rules["configure"] == "^$"
    assert set(users["kring-ops"]["tags"]) == {"administrator", "impersonator"}


def _routing_key(event: type) -> str:
    """A routing key the event is published with (partner and replies keys carry more parts)."""
    if event.channel.value == "events":
        return event.binding_key()
    return event.binding_key().replace("*", "some-funder").replace("#", "UT.GM0344")
