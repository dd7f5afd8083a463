"""AdmissionReview v1: reading a request, writing a response (pure)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from osm.models.k8s import LABEL_IGNORE, LABEL_MONITORED_BY

ADMISSION_API = "admission.k8s.io/v1"


class ReviewError(Exception):
    """The body is not an AdmissionReview a webhook can answer."""


def request_of(review: Any) -> Mapping[str, Any]:
    """The `request` of an AdmissionReview v1; ReviewError saying what is wrong otherwise."""
    if not isinstance(review, Mapping) or review.get("kind") != "AdmissionReview":
        raise ReviewError("the body is not an AdmissionReview")
    if review.get("apiVersion") != ADMISSION_API:
        raise ReviewError(f"AdmissionReview {review.get('apiVersion')!r}: only {ADMISSION_API} is served")
    req = review.get("request")
    if not isinstance(req, Mapping) or not isinstance(req.get("uid"), str) or not req.get("uid"):
        raise ReviewError("the AdmissionReview has no request.uid")
    return req


def response(
    uid: str, allowed: bool, *, message: str = "", code: int = 0, patch: Any = None
) -> dict[str, Any]:
    resp: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if message or code:
        resp["status"] = {"message": message, "code": code or (200 if allowed else 400)}
    if patch is not None:
        resp["patchType"] = "JSONPatch"
        resp["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"apiVersion": ADMISSION_API, "kind": "AdmissionReview", "response": resp}


# ---- what both webhook configurations are made of


def config_labels(mesh_name: str, version: str, app: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "openservicemesh.io",
        "app.kubernetes.io/instance": mesh_name,
        "app.kubernetes.io/version": version,
        "app": app,
    }


def client_config(service: str, namespace: str, path: str, port: int, ca_pem: bytes) -> dict[str, Any]:
    return {
        "service": {"name": service, "namespace": namespace, "path": path, "port": port},
        "caBundle": base64.b64encode(ca_pem).decode(),
    }


def mesh_namespaces(
    mesh_name: str, osm_namespace: str, monitored_label: str, ignore_label: str
) -> dict[str, Any]:
    """The namespaces of the mesh, as upstream's webhooks select them: monitored by it, not ignored, not
    the control plane's, not a control-plane namespace."""
    return {
        "matchLabels": {LABEL_MONITORED_BY: mesh_name},
        "matchExpressions": [
            {"key": LABEL_IGNORE, "operator": "DoesNotExist"},
            {"key": "name", "operator": "NotIn", "values": [osm_namespace]},
            {"key": "control-plane", "operator": "DoesNotExist"},
        ],
    }
