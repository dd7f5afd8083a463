"""The validating webhook's handler and its ValidatingWebhookConfiguration (contract section 3.6)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from osm.metrics import ControlPlaneMetrics
from osm.models.k8s import LABEL_IGNORE, LABEL_MONITORED_BY
from osm.validator.verdict import MESH_CONFIG, VALIDATED, verdict
from osm.webhook import http
from osm.webhook.review import client_config, config_labels, mesh_namespaces, request_of, response

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

    def app(self, metrics: ControlPlaneMetrics | None = None) -> web.Application:
        return http.app(VALIDATE_PATH, self.review, "validation", metrics, "ValidatingWebhook")


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
    common = {
        "clientConfig": client_config(
            VALIDATOR_SERVICE, osm_namespace, VALIDATE_PATH, VALIDATOR_PORT, ca_pem
        ),
        "failurePolicy": "Fail",
        "matchPolicy": "Exact",
        "sideEffects": "None",
        "timeoutSeconds": 10,
        "admissionReviewVersions": ["v1"],
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name, "labels": config_labels(mesh_name, version, "osm-controller")},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                **common,
                "namespaceSelector": mesh_namespaces(
                    mesh_name, osm_namespace, LABEL_MONITORED_BY, LABEL_IGNORE
                ),
                "rules": _rules(VALIDATED),
            },
            {
                # The mesh's own MeshConfig, in the OSM namespace (which the webhook above excludes)
                "name": f"meshconfig.{WEBHOOK_NAME}",
                **common,
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": osm_namespace}},
                "rules": _rules((MESH_CONFIG,)),
            },
        ],
    }
