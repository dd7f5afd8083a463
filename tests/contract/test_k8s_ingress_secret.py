"""The controller keeps the ingress gateway's certificate in the Secret MeshConfig names: issued when
missing, left alone while good, issued again with a third of its life left, when the names change or the
root changes, and a Secret that was tampered with is replaced. On fakekube with the real client."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from osm.apis.meshconfig import IngressGatewayCertSpec
from osm.certificate.tresor import TresorCA
from osm.k8s.client import KubeClient
from osm.k8s.ingresssecret import IngressGatewaySecret
from osm.k8s.resources import NAMESPACES, SECRETS
from osm.testing.fakekube import FakeKube

pytestmark = pytest.mark.asyncio

T0 = datetime(2026, 6, 1, tzinfo=UTC)
CA = TresorCA.create(now=T0 - timedelta(days=1))
SPEC = IngressGatewayCertSpec(("nginx.web.cluster.local",), 24 * 3600.0, "ingress-gateway-cert", "web")
PATH = SECRETS.path("web", "ingress-gateway-cert")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def kube(fk: FakeKube, tmp_path: Path) -> AsyncIterator[KubeClient]:
    client = await KubeClient.connect(fk.write_kubeconfig(tmp_path / "kubeconfig"))
    try:
        await client.create(NAMESPACES.path(), {"metadata": {"name": "web"}})
        yield client
    finally:
        await client.close()


def cert_of(secret: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))


def sans(secret: dict[str, Any]) -> list[str]:
    ext = cert_of(secret).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ext.get_values_for_type(x509.DNSName)


async def test_the_secret_is_issued_kept_and_renewed(kube: KubeClient) -> None:
    clock = Clock()
    g = IngressGatewaySecret(kube, CA, clock=clock)
    assert await g.sync() == ""  # no ingressGateway in the MeshConfig: nothing
    g.want(SPEC)
    assert await g.sync() == "it does not exist"
    first = await kube.get(PATH)
    assert first["type"] == "kubernetes.io/tls" and sans(first) == ["nginx.web.cluster.local"]
    assert base64.b64decode(first["data"]["ca.crt"]) == CA.trust_bundle_pem
    key = base64.b64decode(first["data"]["tls.key"])
    assert b"PRIVATE KEY" in key
    cert = cert_of(first)
    assert cert.issuer == x509.load_pem_x509_certificate(CA.root_cert_pem).subject
    clock.now = T0 + timedelta(hours=15)  # 9 h of 24 left: kept
    assert (
        await g.sync() == ""
        and (await kube.get(PATH))["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    )
    clock.now = T0 + timedelta(hours=17)  # 7 h left: renewed
    assert await g.sync() == "a third of its lifetime or less is left"
    renewed = await kube.get(PATH)
    assert cert_of(renewed).serial_number != cert.serial_number
    assert g.issued == 2


async def test_new_names_another_root_or_a_tampered_secret_are_issued_again(kube: KubeClient) -> None:
    clock = Clock()
    g = IngressGatewaySecret(kube, CA, clock=clock)
    g.want(SPEC)
    await g.sync()
    g.want(
        IngressGatewayCertSpec(
            ("gw.web.cluster.local", "gw2.web.cluster.local"), 3600.0, "ingress-gateway-cert", "web"
        )
    )
    assert await g.sync() == "its names differ from certificate.ingressGateway.subjectAltNames"
    assert sorted(sans(await kube.get(PATH))) == ["gw.web.cluster.local", "gw2.web.cluster.local"]
    other = IngressGatewaySecret(kube, TresorCA.create(now=T0 - timedelta(days=1)), clock=clock)
    other.want(g.spec)
    assert await other.sync() == "the mesh's root certificate changed"
    secret = await kube.get(PATH)
    secret["data"]["tls.crt"] = base64.b64encode(b"not a certificate").decode()
    await kube.replace(PATH, secret)
    assert (await other.sync()).startswith("its certificate is unreadable")
    del secret["data"]
    secret["metadata"].pop("resourceVersion")
    await kube.replace(PATH, secret)
    assert await other.sync() == "it lacks tls.crt, tls.key, ca.crt"
