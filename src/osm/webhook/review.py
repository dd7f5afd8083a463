"""AdmissionReview v1: reading a request, writing a response (pure)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

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
