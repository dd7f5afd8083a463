"""The controller keeps the ingress gateway's certificate (MeshConfig `certificate.ingressGateway`) in
its Secret: issued when the MeshConfig names it, renewed when a third of its lifetime is left, issued
again when its names or the mesh's root change (see osm.certificate.ingressgateway). A Secret it finds
in place and still good is left alone; a write is guarded by the Secret's resourceVersion."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp

from osm import errcode
from osm.apis.meshconfig import IngressGatewayCertSpec
from osm.certificate import ingressgateway
from osm.certificate.tresor import TresorCA
from osm.k8s.client import ApiError, KubeClient, Obj
from osm.k8s.resources import SECRETS

log = logging.getLogger(__name__)

LABEL_KIND = "openservicemesh.io/secret"  # marks the Secrets the mesh issues


def _now() -> datetime:
    return datetime.now(UTC)


def _decoded(secret: Obj) -> dict[str, bytes] | None:
    try:
        return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    except (binascii.Error, TypeError, ValueError):
        return {}


class IngressGatewaySecret:
    def __init__(
        self,
        kube: KubeClient,
        ca: TresorCA,
        *,
        check_interval: float = 60.0,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.kube = kube
        self.ca = ca
        self.check_interval = check_interval
        self.clock = clock
        self.spec: IngressGatewayCertSpec | None = None
        self.issued = 0
        self._changed = asyncio.Event()

    def want(self, spec: IngressGatewayCertSpec | None) -> None:
        """The MeshConfig's current spec (None: no ingress gateway certificate)."""
        if spec != self.spec:
            self.spec = spec
            self._changed.set()

    async def sync(self) -> str:
        """Issue the Secret's certificate if it must be; why it was ("" when nothing was written)."""
        spec = self.spec
        if spec is None:
            return ""
        path = SECRETS.path(spec.secret_namespace, spec.secret_name)
        try:
            secret: Obj | None = await self.kube.get(path)
        except ApiError as e:
            if not e.not_found:
                raise
            secret = None
        now = self.clock()
        why = ingressgateway.why_reissue(
            spec, None if secret is None else _decoded(secret), self.ca.trust_bundle_pem, now=now
        )
        if not why:
            return ""
        data = {
            k: base64.b64encode(v).decode() for k, v in ingressgateway.issue(self.ca, spec, now=now).items()
        }
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {
                "name": spec.secret_name,
                "namespace": spec.secret_namespace,
                "labels": {LABEL_KIND: "ingress-gateway"},
            },
            "data": data,
        }
        if secret is None:
            await self.kube.create(SECRETS.path(spec.secret_namespace), body)
        else:
            body["metadata"]["resourceVersion"] = (secret.get("metadata") or {}).get("resourceVersion")
            await self.kube.replace(path, body)
        self.issued += 1
        log.info(
            "issued the ingress gateway certificate for %s into Secret %s/%s: %s",
            ", ".join(spec.subject_alt_names),
            spec.secret_namespace,
            spec.secret_name,
            why,
        )
        return why

    async def run(self) -> None:
        while True:
            self._changed.clear()  # before the sync: a change during it is seen by the next one
            try:
                await self.sync()
            except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as e:
                spec = self.spec
                log.error(
                    "cannot issue the ingress gateway certificate into Secret %s: %s",
                    f"{spec.secret_namespace}/{spec.secret_name}" if spec else "?",
                    e,
                    extra={"err_code": errcode.CERT_ROTATION_FAILED},
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.check_interval)
