"""Kubernetes manifests for Kring, one file per service plus the shared parts.

    python deploy/k8s/generate.py        # rewrites deploy/k8s/*.yaml

Each service: a Deployment (2 replicas, liveness /health/live, readiness /health/ready,
graceful SIGTERM), a Service, and a KEDA ScaledObject scaling on the depth of the
service's busiest queue. Configuration from the `kring` ConfigMap and Secret; tokens are
verified with the public keys at KRING_JWKS_URLS, and the services that sign (referral:
family tokens) get their private key from the `kring-signing-key` Secret as a file, and the
service that publishes to funders (followup) the key of their pseudonyms from the
`kring-pseudonym-key` Secret.
The portal (people's pages) calls the four services' Services; its session key and its client
secret at the issuer come from the `kring-portal` Secret as files.
Prometheus metrics on port 9464 of every pod, reachable from the monitoring namespace only
(monitoring.yaml: a NetworkPolicy).
"""

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent
NAMESPACE = "kring"
IMAGE = "registry.example/kring:{version}"
# The queue whose depth says a service is behind (the first step of its work).
SCALE_ON = {
    "referral": "kring.referral.referral.submit",
    "scheduling": "kring.scheduling.referral.received",
    "plans": "kring.plans.scheduling.conference-scheduled",
    "followup": "kring.followup.plans.plan-accepted",
}
METRICS_PORT = 9464  # KRING_METRICS_PORT (deploy/prometheus/scrape.example.yml)
MONITORING_NAMESPACE = "monitoring"
SIGNING_SERVICES = {"referral"}  # as shared/settings.py SIGNING_SERVICES
SIGNING_KEY_DIR = "/var/run/secrets/kring"
PSEUDONYMISING_SERVICES = {"followup"}  # as shared/settings.py PSEUDONYMISING_SERVICES
# The JWKS of Kring's own signing key (python -m shared.auth --jwks-of signing-key.pem), over
# https: the family tokens referral signs. People and systems sign in at the OpenID Connect
# issuer; the services find its keys through its discovery document.
JWKS_URLS = "https://keys.kring.example/kring-referral/jwks.json"
OIDC_ISSUER = "https://login.kring.example/kring"
PORTAL_PUBLIC_URL = "https://kring.example"
PORTAL_SECRET_DIR = "/var/run/secrets/kring-portal"


def _container(name: str, ports: list[dict[str, Any]], env_from: list[dict[str, Any]], env: list[dict[str, Any]], resources: dict[str, Any]) -> dict[str, Any]:
    """A Kring process's container: the one image, `python -m services.<name>`, the health probes, no root."""
    probe = {"httpGet": {"port": 8080}, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3}
    return {
        "name": name,
        "image": IMAGE.format(version="1.0.0"),
        "args": ["python", "-m", f"services.{name}"],
        "ports": [{"containerPort": 8080, "name": "http"}, *ports],
        "envFrom": env_from,
        "env": env,
        "readinessProbe": {**probe, "httpGet": {"path": "/health/ready", "port": 8080}},
        "livenessProbe": {**probe, "httpGet": {"path": "/health/live", "port": 8080}, "initialDelaySeconds": 10},
        "resources": resources,
        "securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
    }


def _workload(name: str, container: dict[str, Any], volumes: list[dict[str, Any]], grace_seconds: int) -> list[dict[str, Any]]:
    """The Deployment (2 replicas, rolling without a gap) and the Service of `container`."""
    labels = {"app.kubernetes.io/name": f"kring-{name}", "app.kubernetes.io/part-of": "kring"}
    # A mounted key file is root's; its group (fsGroup, added to the service user's groups) may read it.
    pod_security = {"securityContext": {"fsGroup": 10001}} if volumes else {}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"kring-{name}", "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"terminationGracePeriodSeconds": grace_seconds, "containers": [container], **({"volumes": volumes} if volumes else {}), **pod_security},
            },
        },
    }
    http_service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"kring-{name}", "namespace": NAMESPACE, "labels": labels},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": "http", "name": "http"}]},
    }
    return [deployment, http_service]


def service_manifests(service: str) -> list[dict[str, Any]]:
    container = _container(
        service,
        # metrics on a port of their own, in no Service: only Prometheus (monitoring.yaml) reaches it
        ports=[{"containerPort": METRICS_PORT, "name": "metrics"}],
        env_from=[{"configMapRef": {"name": "kring"}}, {"secretRef": {"name": "kring"}}],
        env=[{"name": "RABBITMQ_URL", "valueFrom": {"secretKeyRef": {"name": "kring", "key": f"rabbitmq-url-{service}"}}}],
        resources={"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    )
    volumes: list[dict[str, Any]] = []
    if service in SIGNING_SERVICES:
        container["env"].append({"name": "KRING_SIGNING_KEY_FILE", "value": f"{SIGNING_KEY_DIR}/signing-key.pem"})
        container["volumeMounts"] = [{"name": "signing-key", "mountPath": SIGNING_KEY_DIR, "readOnly": True}]
        volumes.append({"name": "signing-key", "secret": {"secretName": "kring-signing-key", "defaultMode": 0o440}})
    if service in PSEUDONYMISING_SERVICES:
        container["env"].append({"name": "KRING_PSEUDONYM_KEY_FILE", "value": f"{SIGNING_KEY_DIR}/pseudonym.key"})
        container["volumeMounts"] = [{"name": "pseudonym-key", "mountPath": SIGNING_KEY_DIR, "readOnly": True}]
        volumes.append({"name": "pseudonym-key", "secret": {"secretName": "kring-pseudonym-key", "defaultMode": 0o440}})
    deployment, http_service = _workload(service, container, volumes, grace_seconds=60)
    scaler = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": f"kring-{service}", "namespace": NAMESPACE},
        "spec": {
            "scaleTargetRef": {"name": f"kring-{service}"},
            "minReplicaCount": 2,
            "maxReplicaCount": 10,
            "triggers": [
                {
                    "type": "rabbitmq",
                    "metadata": {"queueName": SCALE_ON[service], "mode": "QueueLength", "value": "200"},
                    "authenticationRef": {"name": "kring-rabbitmq"},
                }
            ],
        },
    }
    return [deployment, http_service, scaler]


def shared_manifests() -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kring", "namespace": NAMESPACE},
            "data": {
                "KRING_ENVIRONMENT": "production",
                "KRING_TOKEN_ISSUER": "kring",
                "KRING_JWKS_URLS": JWKS_URLS,
                "KRING_OIDC_ISSUER": OIDC_ISSUER,
                "KRING_AMQP_PREFIX": "kring",
                "KRING_LOG_LEVEL": "INFO",
                "KRING_PREFETCH": "32",
                "KRING_METRICS_PORT": str(METRICS_PORT),
                "KRING_METRICS_HOST": "0.0.0.0",
            },
        },
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": {"name": "kring-rabbitmq", "namespace": NAMESPACE},
            "spec": {"secretTargetRef": [{"parameter": "host", "name": "kring", "key": "rabbitmq-url-ops"}]},
        },
    ]


def portal_manifests() -> list[dict[str, Any]]:
    """The people's portal: no broker, no database; it calls the services with the person's token."""
    env = [
        {"name": "KRING_PORTAL_PUBLIC_URL", "value": PORTAL_PUBLIC_URL},
        *({"name": f"KRING_PORTAL_{service.upper()}_URL", "value": f"http://kring-{service}"} for service in SCALE_ON),
        {"name": "KRING_PORTAL_SESSION_KEY_FILE", "value": f"{PORTAL_SECRET_DIR}/session.key"},
        {"name": "KRING_PORTAL_OIDC_CLIENT_SECRET_FILE", "value": f"{PORTAL_SECRET_DIR}/client-secret"},
    ]
    container = _container(
        "portal", ports=[], env_from=[{"configMapRef": {"name": "kring"}}], env=env,
        resources={"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    )  # fmt: skip
    container["volumeMounts"] = [{"name": "portal-secrets", "mountPath": PORTAL_SECRET_DIR, "readOnly": True}]
    volumes = [{"name": "portal-secrets", "secret": {"secretName": "kring-portal", "defaultMode": 0o440}}]
    return _workload("portal", container, volumes, grace_seconds=30)


class _PlainDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # manifests read better without &id001
        return True


def monitoring_manifests() -> list[dict[str, Any]]:
    """Who reaches the metrics port: pods of the monitoring namespace only (the HTTP port
    stays open to the ingress and the other services)."""
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "kring-metrics-from-monitoring-only", "namespace": NAMESPACE},
            "spec": {
                "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "kring"}},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {"ports": [{"port": 8080, "protocol": "TCP"}]},
                    {
                        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": MONITORING_NAMESPACE}}}],
                        "ports": [{"port": METRICS_PORT, "protocol": "TCP"}],
                    },
                ],
            },
        }
    ]


def render(documents: list[dict[str, Any]]) -> str:
    header = "# Generated by deploy/k8s/generate.py: edit that, then run it.\n"
    return header + "---\n".join(yaml.dump(d, Dumper=_PlainDumper, sort_keys=False) for d in documents)


def files() -> dict[str, str]:
    out = {"kring.yaml": render(shared_manifests()), "monitoring.yaml": render(monitoring_manifests())}
    for service in SCALE_ON:
        out[f"{service}.yaml"] = render(service_manifests(service))
    out["portal.yaml"] = render(portal_manifests())
    return out


def main() -> int:
    for name, text in files().items():
        (HERE / name).write_text(text)
    print(f"wrote {len(files())} manifests to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
