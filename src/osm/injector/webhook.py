"""The sidecar-injection webhook (`/mutate-pod-creation`): AdmissionReview v1 in, a JSONPatch out.

The handler is thin: the decision (`decision.must_inject`) and the patch (`patch.inject`) are pure;
what needs the cluster (the pod's Namespace, the MeshConfig, issuing the proxy's certificate, creating
its bootstrap Secret) comes through `Backend`. A pod the mesh cannot inject correctly is refused with
the reason (the namespace's annotation, a probe, an exclusion annotation): admitting it without a
sidecar would silently take it out of the mesh.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from osm.apis.meshconfig import MeshConfig
from osm.certificate.types import Certificate
from osm.injector.decision import InjectionError, must_inject
from osm.injector.patch import BOOTSTRAP_VOLUME, InjectorConfig, inject, proxy_cn
from osm.injector.registration import MUTATE_PATH
from osm.metrics import ControlPlaneMetrics
from osm.models.errors import ValidationError
from osm.models.k8s import Namespace
from osm.webhook import http
from osm.webhook.review import request_of, response

log = logging.getLogger(__name__)


class Backend(Protocol):
    async def namespace(self, name: str) -> Namespace | None: ...

    def mesh_config(self) -> MeshConfig: ...

    def issue(self, cn: str) -> Certificate: ...

    async def create_secret(self, secret: dict[str, Any]) -> None: ...


class Injector:
    def __init__(self, backend: Backend, cfg: InjectorConfig) -> None:
        self.backend = backend
        self.cfg = cfg
        self.injected = 0
        self.refused = 0

    async def review(self, review: Any) -> dict[str, Any]:
        req = request_of(review)
        uid = str(req["uid"])
        kind = req.get("kind") or {}
        pod = req.get("object")
        if kind.get("kind") != "Pod" or req.get("operation") != "CREATE" or not isinstance(pod, Mapping):
            return response(uid, True)
        namespace = str(req.get("namespace") or (pod.get("metadata") or {}).get("namespace") or "default")
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        what = f"Pod {namespace}/{meta.get('name') or meta.get('generateName') or '<unnamed>'}"
        ns = await self.backend.namespace(namespace)
        try:
            wanted = must_inject(
                ns,
                {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
                host_network=bool(spec.get("hostNetwork")),
                mesh_name=self.cfg.mesh_name,
                osm_namespace=self.cfg.osm_namespace,
            )
        except InjectionError as e:
            return self._refuse(uid, what, str(e))
        if not wanted:
            return response(uid, True)
        if any(
            v.get("name") == BOOTSTRAP_VOLUME for v in spec.get("volumes") or [] if isinstance(v, Mapping)
        ):
            log.info("%s already has a sidecar; admitted unchanged", what)
            return response(uid, True)
        proxy_uuid = str(uuid.uuid4())
        sa = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
        cn = proxy_cn(proxy_uuid, namespace, sa, self.cfg.trust_domain)
        try:
            cert = self.backend.issue(str(cn))
            injection = inject(
                pod,
                namespace,
                self.backend.mesh_config(),
                self.cfg,
                namespace_annotations=ns.meta.annotations if ns is not None else {},
                proxy_uuid=proxy_uuid,
                cert_pem=cert.cert_pem,
                key_pem=cert.key_pem,
                ca_pem=cert.trust_bundle_pem,
            )
        except (ValidationError, ValueError) as e:
            return self._refuse(uid, what, str(e))
        if not req.get("dryRun"):
            await self.backend.create_secret(injection.secret)
        self.injected += 1
        log.info("%s: sidecar injected (proxy %s)", what, proxy_uuid)
        return response(uid, True, patch=injection.patch)

    def _refuse(self, uid: str, what: str, reason: str) -> dict[str, Any]:
        self.refused += 1
        message = f"{what}: the sidecar cannot be injected: {reason}"
        log.warning("%s", message)
        return response(uid, False, message=message, code=400)

    def app(self, metrics: ControlPlaneMetrics | None = None) -> web.Application:
        return http.app(MUTATE_PATH, self.review, "injection", metrics, "MutatingWebhook")
