"""The controller renews each sidecar's xDS client certificate in its bootstrap Secret.

The injector issues the certificate (short-lived, `XDS_CERT_VALIDITY`) into Secret
`envoy-bootstrap-config-<uuid>`; the kubelet projects the Secret into the pod at /etc/envoy, and Envoy
reloads the pair when the projection changes (the bootstrap's `watched_directory`). With a third of its
lifetime left, the controller issues a new certificate for the same identity and writes it over the
old one (merge patch, guarded by the Secret's resourceVersion).

Only the identity the pod runs as is ever signed: the CN is made from the pod (proxy uuid label,
namespace, service account), and a Secret whose certificate names anything else is left alone and
reported. Each Secret is read once, then only when its renewal is due; the pods tracked are bounded.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from cryptography import x509

from osm import errcode
from osm.certificate.manager import XDS_CERT_VALIDITY
from osm.certificate.types import Certificate
from osm.k8s.client import ApiError, KubeClient, Obj
from osm.k8s.resources import SECRETS
from osm.models.identity import PROXY_KIND_SIDECAR, ProxyCertCN, ServiceIdentity
from osm.models.k8s import LABEL_PROXY_UUID

log = logging.getLogger(__name__)

SECRET_PREFIX = "envoy-bootstrap-config-"
CERT_KEY, KEY_KEY = "sds_cert.pem", "sds_key.pem"
Issue = Callable[[str, timedelta], Certificate]


@dataclass(slots=True)
class _Tracked:
    namespace: str
    pod: str
    cn: str
    not_after: datetime | None = None  # unknown until the Secret is read
    lifetime: timedelta = XDS_CERT_VALIDITY
    retry_at: datetime | None = None


def _now() -> datetime:
    return datetime.now(UTC)


class BootstrapCertRenewer:
    def __init__(
        self,
        kube: KubeClient,
        issue: Issue,
        *,
        trust_domain: str = "cluster.local",
        validity: timedelta = XDS_CERT_VALIDITY,
        check_interval: float = 60.0,
        retry_after: timedelta = timedelta(seconds=30),
        max_tracked: int = 100_000,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.kube = kube
        self.issue = issue
        self.trust_domain = trust_domain
        self.validity = validity
        self.check_interval = check_interval
        self.retry_after = retry_after
        self.max_tracked = max_tracked
        self.clock = clock
        self._tracked: dict[str, _Tracked] = {}  # proxy uuid -> its Secret
        self.renewed = 0
        self.refused = 0
        self.dropped = 0

    # ---- the pod informer's hooks

    def notice(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        uuid = (meta.get("labels") or {}).get(LABEL_PROXY_UUID)
        ns, name = meta.get("namespace"), meta.get("name")
        if not (isinstance(uuid, str) and uuid and isinstance(ns, str) and ns and isinstance(name, str)):
            return
        if uuid in self._tracked:
            return
        if len(self._tracked) >= self.max_tracked:
            self.dropped += 1
            return
        spec = pod.get("spec") or {}
        sa = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
        cn = ProxyCertCN(uuid, PROXY_KIND_SIDECAR, ServiceIdentity(ns, sa), self.trust_domain)
        self._tracked[uuid] = _Tracked(ns, name, str(cn))

    def forget(self, pod: Obj) -> None:
        uuid = ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_PROXY_UUID)
        if isinstance(uuid, str):
            self._tracked.pop(uuid, None)

    # ---- renewal

    def _lifetime(self, window: timedelta) -> timedelta:
        """The lifetime a third of which is left at renewal: the certificate's, without the backdating of
        its start for clock skew (which would make a short-lived one due at once), at most `validity`."""
        return max(min(window, self.validity), timedelta(seconds=1))

    def due(self, t: _Tracked, now: datetime) -> bool:
        if t.retry_at is not None:
            return now >= t.retry_at
        return t.not_after is None or t.not_after - now <= t.lifetime / 3

    async def check(self) -> None:
        """Read or renew every Secret that is due."""
        now = self.clock()
        for uuid, t in list(self._tracked.items()):
            if not self.due(t, now) or self._tracked.get(uuid) is not t:
                continue
            try:
                await self._check_one(uuid, t)
            except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as e:
                t.retry_at = self.clock() + self.retry_after
                log.warning(
                    "cannot renew the certificate in Secret %s/%s%s (Pod %s): %s",
                    t.namespace,
                    SECRET_PREFIX,
                    uuid,
                    t.pod,
                    e,
                    extra={"err_code": errcode.CERT_ROTATION_FAILED},
                )

    async def _check_one(self, uuid: str, t: _Tracked) -> None:
        path = SECRETS.path(t.namespace, SECRET_PREFIX + uuid)
        try:
            secret = await self.kube.get(path)
        except ApiError as e:
            if e.not_found:  # no Secret (another injector's pod, or already gone): nothing to renew
                self._tracked.pop(uuid, None)
                return
            raise
        t.retry_at = None
        data: dict[str, Any] = secret.get("data") or {}
        try:
            current = x509.load_pem_x509_certificate(base64.b64decode(data.get(CERT_KEY) or ""))
            cns = current.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            cn = str(cns[0].value) if cns else ""
        except ValueError as e:
            cn, current = "", None
            reason = f"{CERT_KEY} is not a PEM certificate ({e})"
        else:
            reason = f"its certificate names {cn!r}, not the pod's identity {t.cn!r}"
        if current is None or cn != t.cn:
            self._tracked.pop(uuid, None)
            self.refused += 1
            log.error(
                "Secret %s/%s: not renewed: %s",
                t.namespace,
                SECRET_PREFIX + uuid,
                reason,
                extra={"err_code": errcode.CERT_ROTATION_FAILED},
            )
            return
        t.not_after = current.not_valid_after_utc
        t.lifetime = self._lifetime(current.not_valid_after_utc - current.not_valid_before_utc)
        if t.not_after - self.clock() > t.lifetime / 3:
            return
        fresh = self.issue(t.cn, self.validity)
        patch = {
            "metadata": {"resourceVersion": (secret.get("metadata") or {}).get("resourceVersion")},
            "data": {
                CERT_KEY: base64.b64encode(fresh.cert_pem).decode(),
                KEY_KEY: base64.b64encode(fresh.key_pem).decode(),
            },
        }
        await self.kube.request("PATCH", path, body=patch, content_type="application/merge-patch+json")
        t.not_after, t.lifetime = fresh.not_after, self._lifetime(fresh.validity)
        self.renewed += 1
        log.info(
            "renewed the sidecar certificate of Pod %s/%s (until %s)", t.namespace, t.pod, fresh.not_after
        )

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.check_interval)
