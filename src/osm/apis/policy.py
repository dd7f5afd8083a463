"""OSM's policy API (`policy.openservicemesh.io/v1alpha1`): the kinds the mesh models.

Retry: for the clients running as one ServiceAccount, how their sidecars retry requests to the listed
Services (Envoy's route retry policy), honoured when MeshConfig `featureFlags.enableRetryPolicy` is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from osm.models.fields import Doc, parse_duration
from osm.models.k8s import ObjectMeta
from osm.models.trafficpolicy import RetryPolicy

POLICY_API = "policy.openservicemesh.io/v1alpha1"

# Envoy's retry_on conditions: HTTP (x-envoy-retry-on) and gRPC (x-envoy-retry-grpc-on)
HTTP_RETRY_ON = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "envoy-ratelimited",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "http3-post-connect-failure",
    }
)
GRPC_RETRY_ON = frozenset({"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"})
MAX_RETRIES = 100  # more than this is a retry storm, not a policy


def _duration_ms(d: Doc, key: str, *, lo_ms: int = 1) -> int:
    text = d.str(key, required=True)
    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise d.error(key, str(e)) from None
    ms = round(seconds * 1000)
    if ms < lo_ms:
        raise d.error(key, f"{text!r} is under {lo_ms}ms")
    if ms > 24 * 3600 * 1000:
        raise d.error(key, f"{text!r} is over 24h")
    return ms


@dataclass(frozen=True, slots=True, order=True)
class Ref:
    """A policy's source or destination: kind, name, namespace."""

    kind: str
    name: str
    namespace: str

    @staticmethod
    def parse(d: Doc, kind: str) -> Ref:
        got = d.str("kind", required=True)
        if got != kind:
            raise d.error("kind", f"must be {kind}, got {got!r}")
        return Ref(kind, d.str("name", required=True), d.str("namespace", required=True))


def parse_retry_policy(d: Doc) -> RetryPolicy:
    retry_on = d.str("retryOn", required=True)
    conditions = [c.strip() for c in retry_on.split(",")]
    for c in conditions:
        if c not in HTTP_RETRY_ON | GRPC_RETRY_ON:
            known = ", ".join(sorted(HTTP_RETRY_ON | GRPC_RETRY_ON))
            raise d.error("retryOn", f"{c[:64]!r} is not a retry condition (one of: {known})")
    return RetryPolicy(
        retry_on=",".join(conditions),
        per_try_timeout_ms=_duration_ms(d, "perTryTimeout"),
        num_retries=d.int("numRetries", required=True, lo=0, hi=MAX_RETRIES),
        backoff_base_ms=_duration_ms(d, "retryBackoffBaseInterval"),
    )


@dataclass(frozen=True, slots=True)
class Retry:
    KIND: ClassVar[str] = "Retry"
    meta: ObjectMeta
    source: Ref  # a ServiceAccount
    destinations: tuple[Ref, ...]  # Services
    policy: RetryPolicy

    @staticmethod
    def from_k8s(data: Mapping[str, Any]) -> Retry:
        meta = ObjectMeta.parse("Retry", data)
        spec = Doc(data, "Retry", meta.namespace, meta.name).obj("spec", required=True)
        source = Ref.parse(spec.obj("source", required=True), "ServiceAccount")
        destinations = tuple(Ref.parse(d, "Service") for d in spec.objs("destinations", required=True))
        if not destinations:
            raise spec.error("destinations", "needs at least one Service")
        policy = parse_retry_policy(spec.obj("retryPolicy", required=True))
        return Retry(meta=meta, source=source, destinations=destinations, policy=policy)
