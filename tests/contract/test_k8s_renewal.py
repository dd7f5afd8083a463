"""The controller renews each sidecar's xDS certificate in its bootstrap Secret, for the pod's own
identity only, reading each Secret once and again only when its renewal is due."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from osm.certificate.tresor import TresorCA
from osm.certificate.types import Certificate
from osm.k8s.client import KubeClient
from osm.k8s.renewal import BootstrapCertRenewer
from osm.k8s.resources import NAMESPACES, SECRETS
from osm.testing.fakekube import FakeKube

pytestmark = pytest.mark.asyncio

T0 = datetime(2026, 6, 1, tzinfo=UTC)
CA = TresorCA.create(now=T0 - timedelta(days=1))
CN = "u-1.sidecar.app.apps.cluster.local"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def pod(uuid: str = "u-1", sa: str = "app") -> dict[str, Any]:
    return {
        "metadata": {"name": "app-0", "namespace": "apps", "labels": {"osm-proxy-uuid": uuid}},
        "spec": {"serviceAccountName": sa},
    }


def secret(cert: Certificate, uuid: str = "u-1") -> dict[str, Any]:
    return {
        "metadata": {"name": f"envoy-bootstrap-config-{uuid}", "namespace": "apps"},
        "data": {
            "sds_cert.pem": base64.b64encode(cert.cert_pem).decode(),
            "sds_key.pem": base64.b64encode(cert.key_pem).decode(),
            "bootstrap.yaml": base64.b64encode(b"kept: as it is\n").decode(),
        },
    }


def serial(doc: dict[str, Any]) -> int:
    pem = base64.b64decode(doc["data"]["sds_cert.pem"])
    return x509.load_pem_x509_certificate(pem).serial_number


@pytest.fixture
async def kube(fk: FakeKube, tmp_path: Path) -> AsyncIterator[KubeClient]:
    client = await KubeClient.connect(fk.write_kubeconfig(tmp_path / "kubeconfig"))
    try:
        await client.create(NAMESPACES.path(), {"metadata": {"name": "apps"}})
        yield client
    finally:
        await client.close()


def renewer(kube: KubeClient, clock: Clock, **kw: Any) -> BootstrapCertRenewer:
    def issue(cn: str, validity: timedelta) -> Certificate:
        return CA.issue(cn, validity, now=clock())

    return BootstrapCertRenewer(kube, issue, validity=timedelta(hours=24), clock=clock, **kw)


async def test_a_certificate_is_renewed_with_a_third_of_its_life_left(kube: KubeClient) -> None:
    clock = Clock()
    first = CA.issue(CN, timedelta(hours=24), now=T0)
    path = SECRETS.path("apps", "envoy-bootstrap-config-u-1")
    await kube.create(SECRETS.path("apps"), secret(first))
    r = renewer(kube, clock)
    r.notice(pod())
    await r.check()  # read once: 24 h left, nothing to do
    assert r.renewed == 0 and serial(await kube.get(path)) == first.serial

    clock.now = T0 + timedelta(hours=15)  # 9 h left: not yet
    await r.check()
    assert r.renewed == 0
    clock.now = T0 + timedelta(hours=16, seconds=1)  # under 8 h left
    await r.check()
    renewed = await kube.get(path)
    assert r.renewed == 1 and serial(renewed) != first.serial
    cert = x509.load_pem_x509_certificate(base64.b64decode(renewed["data"]["sds_cert.pem"]))
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == CN and cert.not_valid_after_utc == clock.now + timedelta(hours=24)
    assert base64.b64decode(renewed["data"]["bootstrap.yaml"]) == b"kept: as it is\n"
    await r.check()  # the new one is good for 24 h
    assert r.renewed == 1


async def test_a_short_lived_certificate_is_renewed_once_per_lifetime(kube: KubeClient) -> None:
    # Certificates start a few minutes early (clock skew): that is not lifetime to count a third of.
    clock = Clock()
    await kube.create(SECRETS.path("apps"), secret(CA.issue(CN, timedelta(seconds=6), now=T0)))

    def issue(cn: str, validity: timedelta) -> Certificate:
        return CA.issue(cn, validity, now=clock())

    r = BootstrapCertRenewer(kube, issue, validity=timedelta(seconds=6), clock=clock)
    r.notice(pod())
    for step in range(1, 25):  # 12 s in half seconds: two lifetimes
        clock.now = T0 + timedelta(seconds=step / 2)
        await r.check()
    assert r.renewed == 3  # at 4 s, 8 s and 12 s: with 2 s left each time


async def test_a_secret_naming_another_identity_is_never_signed(kube: KubeClient) -> None:
    clock = Clock()
    # Someone who can write Secrets in the namespace plants another identity's CN, hoping for a renewal
    planted = CA.issue("u-1.sidecar.admin.apps.cluster.local", timedelta(hours=1), now=T0)
    await kube.create(SECRETS.path("apps"), secret(planted))
    r = renewer(kube, clock)
    r.notice(pod())
    clock.now = T0 + timedelta(minutes=59)
    await r.check()
    assert r.renewed == 0 and r.refused == 1
    stored = await kube.get(SECRETS.path("apps", "envoy-bootstrap-config-u-1"))
    assert serial(stored) == planted.serial  # left as it was


async def test_pods_without_a_secret_are_dropped_and_tracking_is_bounded(kube: KubeClient) -> None:
    clock = Clock()
    r = renewer(kube, clock, max_tracked=2)
    for n in range(3):
        r.notice(pod(f"u-{n}"))
    assert r.dropped == 1 and len(r._tracked) == 2
    await r.check()  # no Secrets: nothing to renew, and nothing tracked any more
    assert r._tracked == {} and r.renewed == 0
    r.notice(pod("u-9"))
    r.forget(pod("u-9"))
    assert r._tracked == {}


async def test_a_conflicting_write_is_retried_later(kube: KubeClient, fk: FakeKube) -> None:
    clock = Clock()
    first = CA.issue(CN, timedelta(hours=1), now=T0)
    await kube.create(SECRETS.path("apps"), secret(first))
    r = renewer(kube, clock, retry_after=timedelta(seconds=30))
    r.notice(pod())
    clock.now = T0 + timedelta(minutes=50)
    original = kube.get

    async def stale_get(path: str) -> dict[str, Any]:
        doc = await original(path)
        doc["metadata"]["resourceVersion"] = "1"  # someone wrote the Secret since
        return doc

    kube.get = stale_get  # type: ignore[method-assign]
    await r.check()
    assert r.renewed == 0
    kube.get = original  # type: ignore[method-assign]
    await r.check()  # not before the retry time
    assert r.renewed == 0
    clock.now += timedelta(seconds=31)
    await r.check()
    assert r.renewed == 1
