"""The controller on a Kubernetes API (fakekube): the CA Secret, readiness, and serving what it lists."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from osm.certificate.types import CertificateError
from osm.cmd.controller import Controller, Settings
from osm.health.server import HealthServer
from osm.k8s.casecret import CA_CERT_KEY, CA_KEY_KEY, load_or_create_ca
from osm.k8s.client import KubeClient
from osm.k8s.resources import NAMESPACES, SECRETS, SERVICES
from osm.testing.fakekube import FakeKube
from osm.testing.wait import wait_for

pytestmark = pytest.mark.asyncio

NOW = datetime.now(UTC)


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[KubeClient]:
    fk = FakeKube(bookmark_interval=0.2)
    await fk.serve()
    client = await KubeClient.connect(fk.write_kubeconfig(tmp_path / "kubeconfig"))
    try:
        await client.create(NAMESPACES.path(), {"metadata": {"name": "osm-system"}})
        yield client
    finally:
        await client.close()
        await fk.stop()


async def test_the_ca_secret_is_created_once_and_shared_by_racing_replicas(kube: KubeClient) -> None:
    results = await asyncio.gather(
        *(load_or_create_ca(kube, "osm-system", "osm-ca-bundle", now=NOW) for _ in range(3))
    )
    roots = {ca.root_cert_pem for ca, _ in results}
    assert len(roots) == 1
    assert sum(created for _, created in results) == 1
    secret = await kube.get(SECRETS.path("osm-system", "osm-ca-bundle"))
    assert base64.b64decode(secret["data"][CA_CERT_KEY]) == roots.pop()
    assert b"PRIVATE KEY" in base64.b64decode(secret["data"][CA_KEY_KEY])
    again, created = await load_or_create_ca(kube, "osm-system", "osm-ca-bundle", now=NOW)
    assert not created and again.root_cert_pem == results[0][0].root_cert_pem


async def test_an_unusable_ca_secret_is_an_error_and_is_not_replaced(kube: KubeClient) -> None:
    garbage = base64.b64encode(b"not a certificate").decode()
    secret = {
        "metadata": {"name": "osm-ca-bundle", "namespace": "osm-system"},
        "data": {CA_CERT_KEY: garbage, CA_KEY_KEY: garbage},
    }
    await kube.create(SECRETS.path("osm-system"), secret)
    with pytest.raises(
        CertificateError, match="Secret osm-system/osm-ca-bundle: not a valid PEM certificate"
    ):
        await load_or_create_ca(kube, "osm-system", "osm-ca-bundle", now=NOW)
    kept = await kube.get(SECRETS.path("osm-system", "osm-ca-bundle"))
    assert kept["data"][CA_CERT_KEY] == garbage
    del secret["data"][CA_KEY_KEY]
    secret["metadata"]["name"] = "half"
    await kube.create(SECRETS.path("osm-system"), secret)
    with pytest.raises(CertificateError, match=r"Secret osm-system/half: has no data key .private\.key."):
        await load_or_create_ca(kube, "osm-system", "half", now=NOW)


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, await r.text()


async def test_health_answers_503_with_the_reason_until_ready() -> None:
    state = {"ok": False}
    server = HealthServer("127.0.0.1:0", ready=lambda: (state["ok"], "ok" if state["ok"] else "not yet"))
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert await get(base + "/health/ready") == (503, "not yet\n")
        assert await get(base + "/health/alive") == (200, "ok\n")
        state["ok"] = True
        assert await get(base + "/health/ready") == (200, "ok\n")
        status, body = await get(base + "/version")
        assert status == 200 and '"version"' in body
    finally:
        await server.stop()


async def test_the_controller_serves_once_the_cluster_is_listed(kube: KubeClient) -> None:
    await kube.create(
        NAMESPACES.path(),
        {"metadata": {"name": "bookstore", "labels": {"openservicemesh.io/monitored-by": "osm"}}},
    )
    await kube.create(
        SERVICES.path("bookstore"),
        {
            "metadata": {"name": "bookstore", "namespace": "bookstore"},
            "spec": {"selector": {"app": "bookstore"}, "ports": [{"port": 14001}]},
        },
    )
    settings = Settings(
        local_dir=None,
        state_dir=None,
        kubernetes=True,
        ads_address="127.0.0.1:0",
        http_address="127.0.0.1:0",
    )
    controller = await Controller.on_kubernetes(settings, kube)
    task = asyncio.create_task(controller.run())
    try:
        await asyncio.wait_for(controller.ready.wait(), 10)
        assert controller.health is not None
        assert await get(f"http://127.0.0.1:{controller.health.port}/health/ready") == (200, "ok\n")
        assert controller.state is not None
        assert ("bookstore", "bookstore") in controller.state.services
        # the state follows the cluster
        await kube.delete(SERVICES.path("bookstore", "bookstore"))
        await wait_for(
            lambda: controller.state is not None and not controller.state.services, 5, "the delete served"
        )
        # a missing MeshConfig runs the mesh closed, and says so
        assert "does not exist" in controller.state.mesh_config_problem
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_osm_install_waits_for_every_control_plane_deployment(kube: KubeClient) -> None:
    from osm.cli.cluster import DEPLOYMENTS, wait_rollout

    seen: list[str] = []
    with pytest.raises(TimeoutError, match="osm-controller \\(not created\\)"):
        await wait_rollout(kube, "osm-system", 0.0, seen.append)
    for name in ("osm-controller", "osm-injector", "osm-bootstrap"):
        deployment = {
            "metadata": {"name": name, "namespace": "osm-system"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": name, "image": "x"}]},
                },
            },
        }
        await kube.create(DEPLOYMENTS.path("osm-system"), deployment)
    waiting = asyncio.create_task(wait_rollout(kube, "osm-system", 30.0, seen.append))
    await asyncio.sleep(0.2)
    assert not waiting.done() and "osm-injector 0/1" in seen[-1]
    for name in ("osm-controller", "osm-injector", "osm-bootstrap"):  # as the kubelet and controllers would
        current = await kube.get(DEPLOYMENTS.path("osm-system", name))
        current["status"] = {"replicas": 1, "availableReplicas": 1}
        await kube.replace(DEPLOYMENTS.path("osm-system", name) + "/status", current)
    await asyncio.wait_for(waiting, 5)
