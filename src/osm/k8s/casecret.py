"""The mesh's root CA kept in a Kubernetes Secret (upstream's `osm-ca-bundle`, keys `ca.crt` and
`private.key`), so that the controller, the injector and their replicas sign with one root.

Created if absent; when two replicas race, the create of the second gets 409 and it reads the
winner's. A Secret that exists but is unusable (a key missing, not PEM, a mismatched pair, expired)
is an error: it is never replaced, since replacing the root would cut every sidecar off.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from osm.certificate.tresor import TresorCA
from osm.certificate.types import CertificateError
from osm.k8s.client import ApiError, KubeClient, Obj
from osm.k8s.resources import SECRETS

CA_CERT_KEY = "ca.crt"
CA_KEY_KEY = "private.key"
EXPIRATION_KEY = "expiration"


def ca_secret(namespace: str, name: str, ca: TresorCA, labels: dict[str, str] | None = None) -> Obj:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    expiry = ca.root_cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "type": "Opaque",
        "data": {
            CA_CERT_KEY: b64(ca.root_cert_pem),
            CA_KEY_KEY: b64(ca.root_key_pem),
            EXPIRATION_KEY: b64(expiry.encode()),
        },
    }


def ca_from_secret(secret: Obj, *, now: datetime) -> TresorCA:
    meta = secret.get("metadata") or {}
    where = f"Secret {meta.get('namespace', '')}/{meta.get('name', '')}"
    data = secret.get("data") or {}
    try:
        cert, key = (base64.b64decode(data[k], validate=True) for k in (CA_CERT_KEY, CA_KEY_KEY))
    except KeyError as e:
        raise CertificateError(f"{where}: has no data key {e.args[0]!r}") from None
    except (binascii.Error, TypeError, ValueError) as e:
        raise CertificateError(f"{where}: data is not base64: {e}") from None
    return TresorCA.from_pem(cert, key, now=now, where=where)


async def load_or_create_ca(
    client: KubeClient, namespace: str, name: str, *, now: datetime, labels: dict[str, str] | None = None
) -> tuple[TresorCA, bool]:
    """The CA of Secret namespace/name, created when absent; and whether this call created it."""
    path = SECRETS.path(namespace, name)
    try:
        return ca_from_secret(await client.get(path), now=now), False
    except ApiError as e:
        if not e.not_found:
            raise
    ca = TresorCA.create(now=now)
    try:
        await client.create(SECRETS.path(namespace), ca_secret(namespace, name, ca, labels))
    except ApiError as e:
        if not e.conflict:
            raise
        return ca_from_secret(await client.get(path), now=now), False  # another replica won the race
    return ca, True
