"""The validating webhook's handler and its ValidatingWebhookConfiguration (contract section 3.6)."""

from __future__ import annotations

import base64
import logging
from typing import Any

from aiohttp import web

from osm.models.k8s import LABEL_IGNORE, LABEL_MONITORED_BY
from osm.validator.verdict import MESH_CONFIG, VALIDATED, verdict
from osm.webhook import http
from osm.webhook.review import request_of, response

log = logging.getLogger(__name__)

VALIDATE_PATH = "/validate"
WEBHOOK_NAME = "osm-validator.k8s.io"
VALIDATOR_SERVICE = "osm-validator"
VALIDATOR_PORT = 9093


def default_config_name(mesh_name: str) -> str:
    return f"osm-validator-mesh-{mesh_name}"


class Validator:
    def __init__(self) -> None:
        self.allowed = 0
        self.denied = 0

    async def review(self, review: Any) -> dict[str, Any]:
        req = request_of(review)
        ok, reason = verdict(req)
        if ok:
            self.allowed += 1
            return response(str(req["uid"]), True)
        self.denied += 1
        log.info("denied: %s", reason)
        return response(str(req["uid"]), False, message=reason, code=400)

    def app(self) -> web.Application:
        return http.app(VALIDATE_PATH, self.review, "validation")


def _rules(kinds: tuple[tuple[str, str, str], ...]) -> list[dict[str, Any]]:
    return [
        {
            "apiGroups": [group],
            "apiVersions": [version],
            "operations": ["CREATE", "UPDATE"],
            "resources": [plural],
            "scope": "Namespaced",
        }
        for group, version, plural in kinds
    ]


def validating_webhook_configuration(
    name: str, *, mesh_name: str, osm_namespace: str, ca_pem: bytes, version: str = ""
) -> dict[str, Any]:
    client = {
        "service": {
            "name": VALIDATOR_SERVICE,
            "namespace": osm_namespace,
            "path": VALIDATE_PATH,
            "port": VALIDATOR_PORT,
        },
        "caBundle": base64.b64encode(ca_pem).decode(),
    }
    common = {
        "clientConfig": client,
        "failurePolicy": "Fail",
        "matchPolicy": "Exact",
        "sideEffects": "None",
        "timeoutSeconds": 10,
        "admissionReviewVersions": ["v1"],
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": "openservicemesh.io",
                "app.kubernetes.io/instance": mesh_name,
                "app.kubernetes.io/version": version,
                "app": "osm-controller",
            },
        },
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                **common,
                "namespaceSelector": {
                    "matchLabels": {LABEL_MONITORED_BY: mesh_name},
                    "matchExpressions": [
                        {"key": LABEL_IGNORE, "operator": "DoesNotExist"},
                        {"key": "name", "operator": "NotIn", "values": [osm_namespace]},
                        {"key": "control-plane", "operator": "DoesNotExist"},
                    ],
                },
                "rules": _rules(VALIDATED),
            },
            {
                # The mesh's own MeshConfig, in the OSM namespace (which the webhook above excludes)
                "name": f"meshconfig.{WEBHOOK_NAME}",
                **common,
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": osm_namespace},
                },
                "rules": _rules((MESH_CONFIG,)),
            },
        ],
    }
