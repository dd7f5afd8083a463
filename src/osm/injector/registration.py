"""The MutatingWebhookConfiguration that routes pod creation to the injector (contract section 5.1)."""

from __future__ import annotations

import base64
from typing import Any

from osm.models.k8s import LABEL_IGNORE, LABEL_MONITORED_BY

WEBHOOK_NAME = "osm-inject.k8s.io"
MUTATE_PATH = "/mutate-pod-creation"
INJECTOR_SERVICE = "osm-injector"
INJECTOR_PORT = 9090


def default_config_name(mesh_name: str) -> str:
    return f"osm-webhook-{mesh_name}"


def mutating_webhook_configuration(
    name: str, *, mesh_name: str, osm_namespace: str, ca_pem: bytes, version: str = "", timeout: int = 20
) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": "openservicemesh.io",
                "app.kubernetes.io/instance": mesh_name,
                "app.kubernetes.io/version": version,
                "app": "osm-injector",
            },
        },
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": {
                    "service": {
                        "name": INJECTOR_SERVICE,
                        "namespace": osm_namespace,
                        "path": MUTATE_PATH,
                        "port": INJECTOR_PORT,
                    },
                    "caBundle": base64.b64encode(ca_pem).decode(),
                },
                "failurePolicy": "Fail",
                "matchPolicy": "Exact",
                "timeoutSeconds": timeout,
                "sideEffects": "NoneOnDryRun",
                "admissionReviewVersions": ["v1"],
                "namespaceSelector": {
                    "matchLabels": {LABEL_MONITORED_BY: mesh_name},
                    "matchExpressions": [
                        {"key": LABEL_IGNORE, "operator": "DoesNotExist"},
                        {"key": "name", "operator": "NotIn", "values": [osm_namespace]},
                        {"key": "control-plane", "operator": "DoesNotExist"},
                    ],
                },
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
