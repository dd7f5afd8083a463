"""Upstream's e2e_retry_policy_test.go on the local runtime: a client's Retry to a server that answers
503. With `enableRetryPolicy` the client's sidecar retries numRetries (5) times, then gives up:
upstream_rq_retry 5, upstream_rq_retry_limit_exceeded 1, upstream_rq_retry_backoff_exponential 5, and
the client sees 503. With the flag off the same Retry does nothing: the three counters stay 0, and
the client still sees 503.

The backoff base is 50ms instead of upstream's 5s (which makes one request take up to a minute); the
counters do not depend on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import client_server, mesh_config, small_mesh

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

SERVER = "http://server.server.svc.cluster.local:8080/status/503"
CLUSTER = "cluster.server/server|8080."
RETRY_STATS = (
    "upstream_rq_retry",
    "upstream_rq_retry_limit_exceeded",
    "upstream_rq_retry_backoff_exponential",
)
APP_503 = """
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""
MANIFESTS = (
    mesh_config(traffic={"enablePermissiveTrafficPolicyMode": True}, featureFlags={"enableRetryPolicy": True})
    + "---\n"
    + client_server(APP_503)
    + """---
apiVersion: policy.openservicemesh.io/v1alpha1
kind: Retry
metadata: {name: retrypolicy, namespace: client}
spec:
  source: {kind: ServiceAccount, name: client, namespace: client}
  destinations: [{kind: Service, name: server, namespace: server}]
  retryPolicy: {retryOn: 5xx, perTryTimeout: 1s, numRetries: 5, retryBackoffBaseInterval: 50ms}
"""
)


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with small_mesh(tmp_path_factory, "retry", MANIFESTS, [("server", "server"), ("client", "client")]) as m:
        yield m


def route_retry(m: LocalMesh) -> dict[str, object] | None:
    """The retry policy on the client's route to the server (its config dump), if any."""
    cp = m.exec(
        "client", "client", "curl", "-s", "http://127.0.0.1:15000/config_dump?resource=dynamic_route_configs"
    )
    for rc in json.loads(cp.stdout or "{}").get("configs", []):
        for vh in rc.get("route_config", {}).get("virtual_hosts", []):
            if vh["name"] == "outbound_virtual-host|server.server.svc.cluster.local":
                policy: dict[str, object] | None = vh["routes"][0]["route"].get("retry_policy")
                return policy
    return None


def retry_stats_of_one_request(m: LocalMesh) -> tuple[int, dict[str, int]]:
    """Reset the client sidecar's counters, make one request: its status and the server cluster's retry
    counters."""
    m.exec("client", "client", "curl", "-s", "-X", "POST", "http://127.0.0.1:15000/reset_counters")
    status = m.curl("client", "client", SERVER)
    stats = m.envoy_stats("client", "client", "upstream_rq_retry")
    return status, {name: stats.get(CLUSTER + name, 0) for name in RETRY_STATS}


def test_retry_policy_enabled(mesh: LocalMesh) -> None:
    mesh.wait(lambda: route_retry(mesh) is not None, 30, "the Retry on the client's route")
    assert route_retry(mesh) == {
        "retry_on": "5xx",
        "num_retries": 5,
        "per_try_timeout": "1s",
        "retry_back_off": {"base_interval": "0.050s"},
    }
    status, stats = retry_stats_of_one_request(mesh)
    assert status == 503
    assert stats == {
        "upstream_rq_retry": 5,
        "upstream_rq_retry_limit_exceeded": 1,
        "upstream_rq_retry_backoff_exponential": 5,
    }


def test_retry_policy_disabled(mesh: LocalMesh) -> None:
    mesh.edit("mesh.yaml", "enableRetryPolicy: true", "enableRetryPolicy: false")
    try:
        mesh.wait(lambda: route_retry(mesh) is None, 30, "no retry policy with the flag off")
        status, stats = retry_stats_of_one_request(mesh)
        assert status == 503
        assert stats == dict.fromkeys(RETRY_STATS, 0)
    finally:
        mesh.edit("mesh.yaml", "enableRetryPolicy: false", "enableRetryPolicy: true")
