"""The control plane on an API server. Sidecar injection: fakekube calls the injector's webhook over
HTTPS (checked against the caBundle the injector registered), the pod is stored patched, its bootstrap
Secret exists, and a real Envoy started from that Secret is configured by the controller watching the
same API. Policy validation: the controller's validating webhook refuses an invalid TrafficTarget with
its reason."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from osm.cmd.controller import Controller, Settings
from osm.cmd.injector import InjectorServer, InjectorSettings, KubeBackend
from osm.envoy.ads.server import AdsLimits
from osm.injector.patch import InjectorConfig, bootstrap_secret_name
from osm.k8s.client import ApiError, KubeClient, Obj
from osm.k8s.resources import (
    CRDS,
    HTTP_ROUTE_GROUPS,
    MESH_CONFIGS,
    MUTATING_WEBHOOKS,
    NAMESPACES,
    PODS,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    TRAFFIC_TARGETS,
    VALIDATING_WEBHOOKS,
)
from osm.models.k8s import LABEL_MONITORED_BY, LABEL_PROXY_UUID
from osm.state.store import Store
from osm.testing import kubetools
from osm.testing.envoy import EnvoyProcess, dynamic_clusters, free_port, next_base_id
from osm.testing.fakekube import FakeKube
from osm.testing.kubeobjects import open_crd

pytestmark = pytest.mark.asyncio


@dataclass
class Mesh:
    fk: FakeKube
    kube: KubeClient
    controller: Controller
    injector: InjectorServer


def pod(ns: str, name: str, **annotations: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}, "annotations": annotations},
        "spec": {
            "serviceAccountName": name,
            "containers": [
                {
                    "name": name,
                    "image": "demo",
                    "ports": [{"containerPort": 8080, "name": "http"}],
                    "readinessProbe": {"httpGet": {"port": "http", "path": "/ready"}},
                }
            ],
        },
    }


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class Projection:
    """A Secret volume as the kubelet's atomic writer keeps it: each file is a link through `..data` to
    a timestamped directory, and an update swaps `..data` in one rename. Here the paths are moved from
    /etc/envoy to the test's directory, and Envoy's admin and static listeners to free loopback ports."""

    def __init__(self, mount: Path, admin_port: int) -> None:
        self.mount = mount
        self.admin_port = admin_port
        self.ports: dict[int, int] = {}  # the bootstrap's listener port -> the port used here
        mount.mkdir(parents=True, exist_ok=True)

    def _content(self, name: str, content: bytes) -> bytes:
        text = content.replace(b"/etc/envoy", str(self.mount).encode())
        if name != "bootstrap.yaml":
            return text
        boot = yaml.safe_load(text)
        boot["admin"]["address"]["socket_address"]["port_value"] = self.admin_port
        for listener in boot["static_resources"]["listeners"]:
            address = listener["address"]["socket_address"]
            port = self.ports.setdefault(address["port_value"], free_port())
            address.update({"address": "127.0.0.1", "port_value": port})
        return yaml.safe_dump(boot).encode()

    def write(self, files: dict[str, bytes]) -> None:
        current = self.mount / "..data"
        old = current.resolve() if current.is_symlink() else None
        stamp = self.mount / f"..{time.time_ns()}"
        stamp.mkdir()
        for name, content in files.items():
            (stamp / name).write_bytes(self._content(name, content))
        link = self.mount / "..data_tmp"
        link.symlink_to(stamp.name)
        os.replace(link, current)
        for name in files:
            if not (self.mount / name).is_symlink():
                (self.mount / name).symlink_to(f"..data/{name}")
        if old is not None:
            shutil.rmtree(old)


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Mesh]:
    async with running_mesh(tmp_path) as m:
        yield m


@contextlib.asynccontextmanager
async def running_mesh(
    tmp_path: Path, *, controller: dict[str, Any] | None = None, injector: dict[str, Any] | None = None
) -> AsyncIterator[Mesh]:
    """fakekube with the bookstore namespaces, the controller and the injector (`controller` and
    `injector`: their settings beyond the defaults)."""
    injector_port, validator_port = free_port(), free_port()
    services = {
        "osm-system/osm-injector": f"127.0.0.1:{injector_port}",
        "osm-system/osm-validator": f"127.0.0.1:{validator_port}",
    }
    fk = FakeKube(bookmark_interval=0.2, services=services)
    await fk.serve()
    kube = await KubeClient.connect(fk.write_kubeconfig(tmp_path / "kubeconfig"))
    tasks: list[asyncio.Task[None]] = []
    try:
        for crd in (MESH_CONFIGS, TRAFFIC_TARGETS, HTTP_ROUTE_GROUPS):
            await kube.create(CRDS.path(), open_crd(crd))
        for ns, mesh_label in (
            ("osm-system", None),
            ("bookbuyer", "osm"),
            ("bookstore", "osm"),
            ("other", None),
        ):
            labels = {LABEL_MONITORED_BY: mesh_label} if mesh_label else {}
            await kube.create(NAMESPACES.path(), {"metadata": {"name": ns, "labels": labels}})
        mesh_config = {
            "apiVersion": MESH_CONFIGS.api_version,
            "kind": "MeshConfig",
            "metadata": {"name": "osm-mesh-config", "namespace": "osm-system"},
            "spec": {"traffic": {"enablePermissiveTrafficPolicyMode": True}},
        }
        await kube.create(MESH_CONFIGS.path("osm-system"), mesh_config)
        for ns in ("bookbuyer", "bookstore"):
            await kube.create(SERVICE_ACCOUNTS.path(ns), {"metadata": {"name": ns, "namespace": ns}})
        await kube.create(
            SERVICES.path("bookstore"),
            {
                "metadata": {"name": "bookstore", "namespace": "bookstore"},
                "spec": {"selector": {"app": "bookstore"}, "ports": [{"name": "http", "port": 14001}]},
            },
        )
        settings = Settings(
            local_dir=None,
            state_dir=None,
            kubernetes=True,
            ads_address="127.0.0.1:0",
            webhook_address=f"127.0.0.1:{validator_port}",
            reconcile_interval=0.2,
            **(controller or {}),
        )
        ctrl = await Controller.on_kubernetes(settings, kube)
        tasks.append(asyncio.create_task(ctrl.run()))
        await asyncio.wait_for(ctrl.ready.wait(), 10)
        inj = InjectorServer(
            InjectorSettings(
                config=InjectorConfig(ads_host="127.0.0.1", ads_port=ctrl.port),
                webhook_address=f"127.0.0.1:{injector_port}",
                http_address=None,
                reconcile_interval=0.2,
                **(injector or {}),
            ),
            kube,
        )
        tasks.append(asyncio.create_task(inj.run()))
        await asyncio.wait_for(inj.ready.wait(), 10)
        yield Mesh(fk, kube, ctrl, inj)
    finally:
        for task in reversed(tasks):
            await _stop(task)
        await kube.close()
        await fk.stop()


async def test_the_injector_registers_its_webhook_with_the_mesh_ca(mesh: Mesh) -> None:
    config = await mesh.kube.get(MUTATING_WEBHOOKS.path(name="osm-webhook-osm"))
    hook = config["webhooks"][0]
    assert hook["name"] == "osm-inject.k8s.io" and hook["failurePolicy"] == "Fail"
    assert hook["clientConfig"]["service"] == {
        "name": "osm-injector",
        "namespace": "osm-system",
        "path": "/mutate-pod-creation",
        "port": 9090,
    }
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == mesh.controller.ca.trust_bundle_pem


@pytest.mark.envoy
async def test_a_pod_created_through_the_api_gets_a_sidecar_the_controller_configures(
    mesh: Mesh, tools: kubetools.Tools, tmp_path: Path
) -> None:
    native = pod("bookbuyer", "bookbuyer", **{"openservicemesh.io/native-sidecar": "enabled"})
    created = await mesh.kube.create(PODS.path("bookbuyer"), native)
    uuid = created["metadata"]["labels"][LABEL_PROXY_UUID]
    spec = created["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["osm-init", "envoy"]
    envoy = spec["initContainers"][1]
    assert envoy["restartPolicy"] == "Always" and envoy["securityContext"]["runAsUser"] == 1500
    assert "--service-cluster" in envoy["args"] and "bookbuyer.bookbuyer" in envoy["args"]
    assert {"name": "readiness-port", "containerPort": 15902} in envoy["ports"]
    probe = spec["containers"][0]["readinessProbe"]["httpGet"]
    assert (probe["port"], probe["path"]) == (15902, "/osm-readiness-probe")
    assert {
        "name": "envoy-bootstrap-config-volume",
        "secret": {"secretName": bootstrap_secret_name(uuid)},
    } in spec["volumes"]
    assert "iptables-restore" in spec["initContainers"][0]["args"][0]

    secret = await mesh.kube.get(SECRETS.path("bookbuyer", bootstrap_secret_name(uuid)))
    files = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert set(files) == {
        "bootstrap.yaml",
        "tls_certificate_sds_secret.yaml",
        "validation_context_sds_secret.yaml",
        "sds_cert.pem",
        "sds_key.pem",
        "cacert.pem",
    }
    admin = free_port()
    Projection(tmp_path / "etc-envoy", admin).write(files)
    proc = EnvoyProcess(
        tmp_path / "etc-envoy" / "bootstrap.yaml", admin, next_base_id(), tmp_path / "envoy.log"
    )
    proc.start()
    try:
        await asyncio.to_thread(proc.wait_ready, 20)

        def configured() -> bool:
            return "bookstore/bookstore|14001" in dynamic_clusters(proc.config_dump())

        await asyncio.to_thread(
            proc.wait_for, configured, 20, what="the bookstore cluster from the controller"
        )

        # SMI mode: without a TrafficTarget bookbuyer may not reach bookstore (served by the pod of the
        # bookstore identity); kubectl applies one
        await mesh.kube.create(PODS.path("bookstore"), pod("bookstore", "bookstore"))
        await mesh.kube.apply(
            MESH_CONFIGS.path("osm-system", "osm-mesh-config"),
            {
                "apiVersion": MESH_CONFIGS.api_version,
                "kind": "MeshConfig",
                "metadata": {"name": "osm-mesh-config", "namespace": "osm-system"},
                "spec": {"traffic": {"enablePermissiveTrafficPolicyMode": False}},
            },
            field_manager="test",
        )
        await asyncio.to_thread(
            proc.wait_for, lambda: not configured(), 20, what="the bookstore cluster gone in SMI mode"
        )
        policy = TRAFFIC_TARGET.replace("DEST", "bookstore") + "---\n" + ROUTES
        rc, out = await kubectl(tools, tmp_path, tmp_path / "kubeconfig", "apply", "-f", "-", stdin=policy)
        assert rc == 0, out
        await asyncio.to_thread(
            proc.wait_for, configured, 20, what="the bookstore cluster allowed by the TrafficTarget"
        )
        assert proc.stat("cluster_manager.cds.update_rejected") == 0
        assert proc.stat("listener_manager.lds.update_rejected") == 0
    finally:
        await asyncio.to_thread(proc.stop)


async def test_pods_outside_the_mesh_are_not_injected_and_bad_ones_are_refused(mesh: Mesh) -> None:
    outside = await mesh.kube.create(PODS.path("other"), pod("other", "web"))
    assert "initContainers" not in outside["spec"]
    assert LABEL_PROXY_UUID not in outside["metadata"]["labels"]
    opted_out = await mesh.kube.create(
        PODS.path("bookbuyer"),
        pod("bookbuyer", "job", **{"openservicemesh.io/sidecar-injection": "disabled"}),
    )
    assert "initContainers" not in opted_out["spec"]
    with pytest.raises(ApiError) as refused:
        await mesh.kube.create(
            PODS.path("bookbuyer"),
            pod("bookbuyer", "bad", **{"openservicemesh.io/outbound-port-exclusion-list": "80,http"}),
        )
    assert "Pod bookbuyer/bad: the sidecar cannot be injected" in refused.value.message
    assert "openservicemesh.io/outbound-port-exclusion-list: invalid port 'http'" in refused.value.message
    with pytest.raises(ApiError):
        await mesh.kube.get(PODS.path("bookbuyer", "bad"))
    # a dry run is injected but leaves no Secret behind
    secrets_before = len((await mesh.kube.list(SECRETS.path("bookbuyer")))[0])
    await mesh.kube.request(
        "POST", PODS.path("bookbuyer"), query={"dryRun": "All"}, body=pod("bookbuyer", "dry")
    )
    assert len((await mesh.kube.list(SECRETS.path("bookbuyer")))[0]) == secrets_before


async def test_a_pod_created_right_after_its_namespace_is_injected(mesh: Mesh) -> None:
    await mesh.kube.create(
        NAMESPACES.path(), {"metadata": {"name": "fresh", "labels": {LABEL_MONITORED_BY: "osm"}}}
    )
    created = await mesh.kube.create(PODS.path("fresh"), pod("fresh", "app"))
    assert LABEL_PROXY_UUID in created["metadata"]["labels"]
    assert [c["name"] for c in created["spec"]["containers"]] == ["app", "envoy"]
    # the lookup the webhook falls back on when its cache does not have the namespace yet
    backend = KubeBackend(mesh.kube, Store(), mesh.controller.certs)
    fresh = await backend.namespace("fresh")
    assert fresh is not None and fresh.monitored_by == "osm"
    assert await backend.namespace("missing") is None


TRAFFIC_TARGET = """
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata:
  name: bookbuyer-to-bookstore
  namespace: bookstore
spec:
  destination: {kind: ServiceAccount, name: bookstore, namespace: DEST}
  sources: [{kind: ServiceAccount, name: bookbuyer, namespace: bookbuyer}]
  rules: [{kind: HTTPRouteGroup, name: routes, matches: [all]}]
"""


ROUTES = """
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata:
  name: routes
  namespace: bookstore
spec:
  matches: [{name: all, pathRegex: ".*", methods: ["*"]}]
"""


async def kubectl(
    tools: kubetools.Tools, home: Path, kubeconfig: Path, *args: str, stdin: str = ""
) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        str(tools.kubectl),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=tools.env(kubeconfig, home),
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return int(proc.returncode or 0), out.decode()


async def test_kubectl_sees_the_validators_reason_for_an_invalid_traffic_target(
    mesh: Mesh, tools: kubetools.Tools, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    config = await mesh.kube.get(VALIDATING_WEBHOOKS.path(name="osm-validator-mesh-osm"))
    assert [w["name"] for w in config["webhooks"]] == [
        "osm-validator.k8s.io",
        "meshconfig.osm-validator.k8s.io",
    ]

    rc, out = await kubectl(
        tools, tmp_path, kubeconfig, "apply", "-f", "-", stdin=TRAFFIC_TARGET.replace("DEST", "bookbuyer")
    )
    assert rc != 0
    assert 'admission webhook "osm-validator.k8s.io" denied the request' in out
    assert (
        "TrafficTarget bookstore/bookbuyer-to-bookstore: field spec.destination.namespace: must equal the "
        "TrafficTarget's namespace 'bookstore', got 'bookbuyer'"
    ) in out
    rc, out = await kubectl(
        tools, tmp_path, kubeconfig, "apply", "-f", "-", stdin=TRAFFIC_TARGET.replace("DEST", "bookstore")
    )
    assert rc == 0, out
    # a MeshConfig that would break the mesh is refused too (a misspelt field would be ignored otherwise)
    rc, out = await kubectl(
        tools,
        tmp_path,
        kubeconfig,
        "patch",
        "meshconfig",
        "osm-mesh-config",
        "-n",
        "osm-system",
        "--type=merge",
        "-p",
        '{"spec": {"traffic": {"enablePermisiveTrafficPolicyMode": false}}}',
    )
    assert rc != 0 and "did you mean 'enablePermissiveTrafficPolicyMode'?" in out


async def test_the_webhook_configurations_are_restored_when_deleted_or_edited(mesh: Mesh) -> None:
    mutating = MUTATING_WEBHOOKS.path(name="osm-webhook-osm")
    validating = VALIDATING_WEBHOOKS.path(name="osm-validator-mesh-osm")
    await mesh.kube.delete(mutating)
    edited = await mesh.kube.get(validating)
    edited["webhooks"][0]["failurePolicy"] = "Ignore"
    await mesh.kube.replace(validating, edited)

    async def restored() -> bool:
        try:
            hooks = (await mesh.kube.get(mutating))["webhooks"]
        except ApiError:
            return False
        return bool(hooks) and (await mesh.kube.get(validating))["webhooks"][0]["failurePolicy"] == "Fail"

    for _ in range(50):
        if await restored():
            break
        await asyncio.sleep(0.1)
    assert await restored()


async def test_each_bootstrap_secret_is_made_owned_by_its_pod(mesh: Mesh) -> None:
    created = await mesh.kube.create(PODS.path("bookbuyer"), pod("bookbuyer", "owned"))
    uuid = created["metadata"]["labels"][LABEL_PROXY_UUID]
    path = SECRETS.path("bookbuyer", bootstrap_secret_name(uuid))

    async def owners() -> list[dict[str, str]]:
        refs: list[dict[str, str]] = (await mesh.kube.get(path))["metadata"].get("ownerReferences", [])
        return refs

    for _ in range(50):
        if await owners():
            break
        await asyncio.sleep(0.1)
    assert await owners() == [
        {"apiVersion": "v1", "kind": "Pod", "name": "owned", "uid": created["metadata"]["uid"]}
    ]


def _xds_serial(proc: EnvoyProcess) -> int | None:
    """The serial of the xDS client certificate Envoy holds (the one naming a sidecar)."""
    for c in json.loads(proc.admin_get("/certs"))["certificates"]:
        for chain in c.get("cert_chain", []):
            if any(".sidecar." in san.get("dns", "") for san in chain.get("subject_alt_names", [])):
                return int(str(chain["serial_number"]), 16)
    return None


def _secret_serial(secret: Obj) -> int:
    pem = base64.b64decode(secret["data"]["sds_cert.pem"])
    return int(x509.load_pem_x509_certificate(pem).serial_number)


@pytest.mark.envoy
async def test_the_controller_renews_a_sidecars_certificate_through_its_secret(tmp_path: Path) -> None:
    """Short-lived sidecar certificates, renewed by the controller into the bootstrap Secret; the kubelet
    projects the Secret (a `..data` swap); Envoy reloads the pair and keeps reconnecting (connections are
    recycled every 1.5 s) through several lifetimes with a valid certificate."""
    validity = timedelta(seconds=6)  # renewed with 2 s left: room for the kubelet's sync and a busy host
    async with running_mesh(
        tmp_path,
        controller={
            "xds_cert_validity": validity,
            "renew_check_interval": 0.2,
            "limits": AdsLimits(max_connection_age=1.5, max_connection_age_grace=0.5),
        },
        injector={"xds_cert_validity": validity},
    ) as m:
        created = await m.kube.create(PODS.path("bookbuyer"), pod("bookbuyer", "bookbuyer"))
        path = SECRETS.path(
            "bookbuyer", bootstrap_secret_name(created["metadata"]["labels"][LABEL_PROXY_UUID])
        )
        admin = free_port()
        projection = Projection(tmp_path / "etc-envoy", admin)
        secret = await m.kube.get(path)
        projection.write({k: base64.b64decode(v) for k, v in secret["data"].items()})

        async def kubelet() -> None:  # the kubelet's sync of the Secret volume
            last = secret["data"]
            while True:
                await asyncio.sleep(0.2)
                data = (await m.kube.get(path))["data"]
                if data != last:
                    projection.write({k: base64.b64decode(v) for k, v in data.items()})
                    last = data

        syncing = asyncio.create_task(kubelet())
        proc = EnvoyProcess(
            projection.mount / "bootstrap.yaml", admin, next_base_id(), tmp_path / "envoy.log"
        )
        proc.start()
        try:
            await asyncio.to_thread(proc.wait_ready, 20)
            first = _secret_serial(secret)
            assert await asyncio.to_thread(_xds_serial, proc) == first
            seen: set[int | None] = set()

            def renewed_three_times() -> bool:
                seen.add(_xds_serial(proc))
                return len(seen - {None, first}) >= 3

            await asyncio.to_thread(
                proc.wait_for, renewed_three_times, 40, 0.3, "three renewals reaching the sidecar"
            )
            ads, renewer = m.controller.ads, m.controller.renewer
            assert ads is not None and renewer is not None and renewer.renewed >= 3
            # The Secret holds what Envoy holds (or one newer), and every reconnect was accepted.
            assert _secret_serial(await m.kube.get(path)) in seen | {_secret_serial(await m.kube.get(path))}
            assert ads.stats.connects > 1 and ads.stats.rejected == 0
            await asyncio.to_thread(
                proc.wait_for, lambda: proc.stat("control_plane.connected_state") == 1, 10, 0.2, "connected"
            )
        finally:
            syncing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await syncing
            await asyncio.to_thread(proc.stop)
