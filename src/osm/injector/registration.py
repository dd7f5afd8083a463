"""The MutatingWebhookConfiguration that routes pod creation to the injector (contract section 5.1)."""

from __future__ import annotations

from typing import Any

from osm.models.k8s import LABEL_IGNORE, LABEL_MONITORED_BY
from osm.webhook.review import client_config, config_labels, mesh_namespaces

WEBHOOK_NAME = "osm-inject.k8s.io"
MUTATE_PATH = "/mutate-pod-creation"
INJECTOR_SERVICE = "osm-injector"
INJECTOR_PORT = 9090


def default_config_name(mesh_name: str) -> str:
    return f"osm-webhook-{mesh_name}"


def mutating_webhook_configuration(
    name: str, *, mesh_name: str, osm_namespace: str, ca_pem: bytes, version: str = "", timeout: int = 20
) -> dict[str, Any]:
    client = client_config(INJECTOR_SERVICE, osm_namespace, MUTATE_PATH, INJECTOR_PORT, ca_pem)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": config_labels(mesh_name, version, "osm-injector")},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": client,
                "failurePolicy": "Fail",
                "matchPolicy": "Exact",
                "timeoutSeconds": timeout,
                "sideEffects": "NoneOnDryRun",
                "admissionReviewVersions": ["v1"],
                "namespaceSelector": mesh_namespaces(
                    mesh_name, osm_namespace, LABEL_MONITORED_BY, LABEL_IGNORE
                ),
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
            }
        ],
    }
