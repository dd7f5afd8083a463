"""Inbound enforcement on the wire: a pod in a network namespace with the init container's iptables
rules and a real Envoy (uid 1500) in front of its app. Clients in another namespace connect to the
pod IP; the sidecar's inbound listener (15003, original destination) requires mTLS and applies RBAC."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from osm.certificate.tresor import TresorCA
from osm.injector.iptables import IptablesConfig, iptables_rules
from osm.local.bootstrap import BootstrapError, find_pod, write_bootstrap
from osm.testing.envoy import EnvoyProcess, next_base_id
from osm.testing.netns import NetNS, have_netns_tools, iptables_restore, veth_pair
from osm.testing.wait import wait_until

pytestmark = [pytest.mark.netns, pytest.mark.envoy]

DATA = Path(__file__).parent / "data"
CLIENT_IP, POD_IP = "10.213.7.1", "10.213.7.2"
ADS_PORT = 15128
SNI = "store.store.svc.cluster.local"

MANIFESTS = f"""
apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {{name: osm-mesh-config, namespace: osm-system}}
spec: {{traffic: {{enablePermissiveTrafficPolicyMode: false}}}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: store, labels: {{openservicemesh.io/monitored-by: osm}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: store, namespace: store}}
spec:
  clusterIP: 10.96.7.10
  selector: {{app: store}}
  ports: [{{name: http, port: 14001, targetPort: 14001}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: store-0, namespace: store, labels: {{app: store}}}}
spec:
  serviceAccountName: store
  containers: [{{name: app, image: store}}]
status: {{podIP: {POD_IP}}}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {{name: store-routes, namespace: store}}
spec:
  matches:
  - {{name: books, pathRegex: /books, methods: [GET]}}
  - {{name: audit, pathRegex: /audit, methods: [GET]}}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {{name: buyer, namespace: store}}
spec:
  destination: {{kind: ServiceAccount, name: store, namespace: store}}
  rules: [{{kind: HTTPRouteGroup, name: store-routes, matches: [books]}}]
  sources: [{{kind: ServiceAccount, name: buyer, namespace: buyer}}]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {{name: auditor, namespace: store}}
spec:
  destination: {{kind: ServiceAccount, name: store, namespace: store}}
  rules: [{{kind: HTTPRouteGroup, name: store-routes, matches: [audit]}}]
  sources: [{{kind: ServiceAccount, name: auditor, namespace: audit}}]
"""


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory uid 1500 (Envoy) can read: pytest's tmp_path may be private to root."""
    d = Path(tempfile.mkdtemp(prefix="osm-inbound-"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _client(ns: NetNS, work: Path, method: str, path: str, identity: str | None) -> dict[str, Any]:
    args = [str(DATA / "mtls_client.py"), POD_IP, "14001", SNI, method, path]
    if identity is None:
        args += ["--no-cert", str(work / "ca.pem")]
    else:
        args += [str(work / f"{identity}.crt"), str(work / f"{identity}.key"), str(work / "ca.pem")]
    out = ns.run(sys.executable, *args, timeout=15).stdout.strip()
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    return result


def test_inbound_mtls_and_rbac(workdir: Path) -> None:
    reason = have_netns_tools()
    if reason:
        pytest.skip(reason)
    manifests = workdir / "manifests"
    manifests.mkdir()
    (manifests / "mesh.yaml").write_text(MANIFESTS)
    state = workdir / "state"
    client_ns, pod_ns = NetNS(), NetNS()
    procs: list[subprocess.Popen[Any]] = []
    ctrl_log = open(workdir / "controller.log", "w")  # noqa: SIM115 (closed in finally)
    envoy: EnvoyProcess | None = None
    try:
        veth_pair(client_ns, pod_ns, CLIENT_IP, POD_IP)
        iptables_restore(pod_ns, iptables_rules(IptablesConfig()))
        # Client certificates from the mesh CA (the controller reuses the CA in the state dir).
        ca = TresorCA.load_or_create(state, now=datetime.now(UTC))
        (workdir / "ca.pem").write_bytes(ca.trust_bundle_pem)
        for ident in ("buyer.buyer", "auditor.audit", "thief.thief"):
            cert = ca.issue(f"{ident}.cluster.local", timedelta(hours=1), now=datetime.now(UTC))
            (workdir / f"{ident.split('.')[0]}.crt").write_bytes(cert.cert_pem)
            (workdir / f"{ident.split('.')[0]}.key").write_bytes(cert.key_pem)
        procs.append(
            client_ns.popen(
                str(Path(sys.executable).parent / "osm-controller"),
                "--local",
                str(manifests),
                "--state-dir",
                str(state),
                "--ads-address",
                f"{CLIENT_IP}:{ADS_PORT}",
                stdout=ctrl_log,
                stderr=subprocess.STDOUT,
            )
        )
        app_log = workdir / "app.log"
        app_log.touch()
        procs.append(
            pod_ns.popen(
                sys.executable,
                str(DATA / "echo_app.py"),
                "127.0.0.1",
                "14001",
                str(app_log),
                stderr=subprocess.DEVNULL,
            )
        )
        sidecar = workdir / "sidecar"
        # The controller assigns the pod its proxy UUID when it first loads the manifests.
        wait_until(
            lambda: find_pod(manifests, "store", "store-0", state),
            15,
            "the controller to know pod store/store-0",
            tolerate=(BootstrapError,),
        )
        written = write_bootstrap(
            find_pod(manifests, "store", "store-0", state),
            state_dir=state,
            out=sidecar,
            ads_host=CLIENT_IP,
            ads_port=ADS_PORT,
            admin_port=15000,
        )
        os.chmod(sidecar, 0o755)
        for f in sidecar.iterdir():
            os.chown(f, 1500, 1500)
        envoy = EnvoyProcess(
            written.path, 15000, next_base_id(), sidecar / "envoy.log", uid=1500, netns=pod_ns.name
        )
        os.chown(sidecar, 1500, 1500)
        envoy.start()
        envoy.wait_ready(30)
        envoy.wait_for(
            lambda: (
                envoy is not None
                and envoy.stat("listener_manager.total_listeners_active") >= 1
                and envoy.stat("sds.service-cert_store/store.update_success") >= 1
            ),
            timeout=30,
            what="the inbound listener and the service certificate",
        )

        ok = _client(client_ns, workdir, "GET", "/books", "buyer")
        assert ok.get("status") == 200, ok
        assert "URI=" in ok["body"] or "DNS=buyer.buyer.cluster.local" in ok["body"], (
            ok
        )  # the app saw the caller

        wrong_route = _client(
            client_ns, workdir, "GET", "/audit", "buyer"
        )  # a route granted to another identity
        assert wrong_route.get("status") == 403, wrong_route
        no_route = _client(client_ns, workdir, "POST", "/books", "buyer")  # no route at all for POST
        assert no_route.get("status") == 404, no_route
        auditor = _client(client_ns, workdir, "GET", "/audit", "auditor")
        assert auditor.get("status") == 200, auditor

        thief = _client(client_ns, workdir, "GET", "/books", "thief")  # no TrafficTarget: network RBAC closes
        assert "error" in thief, thief
        anonymous = _client(client_ns, workdir, "GET", "/books", None)  # no client certificate: no handshake
        assert "error" in anonymous, anonymous

        seen = app_log.read_text().splitlines()
        assert seen == ["GET /books", "GET /audit"], seen  # denied requests never reached the app
        assert envoy.stat("listener.0.0.0.0_15003.ssl.handshake") >= 4
    finally:
        if envoy is not None:
            envoy.stop()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        client_ns.delete()
        pod_ns.delete()
        ctrl_log.close()
