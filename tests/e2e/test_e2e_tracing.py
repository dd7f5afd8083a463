"""Tracing and access logs through two real sidecars on the local runtime.

A Zipkin-compatible collector (`osm.testing.zipkin`) runs as a pod outside the mesh, behind the Service
tracing/jaeger. With MeshConfig `observability.tracing` pointing at it, one request from the client to
the server crosses two sidecars, and the collector receives a span from each (the client's sidecar's
CLIENT span and the server's sidecar's SERVER span, in one trace, with one request id). Turned off in
the MeshConfig, the sidecars stop sending spans, without a restart.

Every sidecar also logs each request as one JSON line with upstream's access-log fields: the same
request appears in the client's log (outbound, to the server's cluster) and the server's (inbound).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from osm.envoy.common import ACCESS_LOG_FIELDS
from osm.testing.localmesh import LocalMesh
from tests.e2e.conftest import (
    HTTP_200,
    client_server,
    mesh_config,
    namespace,
    service_of,
    small_mesh,
    yaml_docs,
)

pytestmark = [pytest.mark.netns, pytest.mark.envoy, pytest.mark.e2e]

ZIPKIN_FLUSH = 5  # seconds: Envoy's Zipkin tracer sends its spans at least this often
URL = "http://server.server:8080/traced"  # each request adds /<uuid>, which marks its spans and logs
COLLECTOR = "http://127.0.0.1:9411"  # asked from inside its own pod
TRACING = {
    "enable": True,
    "address": "jaeger.tracing.svc.cluster.local",
    "port": 9411,
    "endpoint": "/api/v2/spans",
}


def manifests(tracing: bool) -> str:
    collector = yaml_docs(
        namespace("tracing", meshed=False),
        service_of("tracing", "jaeger", {"app": "jaeger"}, 9411, "", "http"),
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "jaeger", "namespace": "tracing", "labels": {"app": "jaeger"}},
            "spec": {
                "containers": [
                    {
                        "name": "collector",
                        "command": ["python3", "-m", "osm.testing.zipkin", "--host", "0.0.0.0"],
                        "ports": [{"containerPort": 9411}],
                    }
                ]
            },
        },
    )
    spec = {
        "traffic": {"enablePermissiveTrafficPolicyMode": True},
        "observability": {"tracing": {**TRACING, "enable": tracing}},
    }
    return "---\n".join([mesh_config(**spec), collector, client_server(HTTP_200.replace("PORT", "8080"))])


@pytest.fixture(scope="module")
def mesh(local_mesh_capable: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    pods = [("client", "client"), ("server", "server"), ("tracing", "jaeger")]
    with small_mesh(tmp_path_factory, "tracing", manifests(False), pods) as m:
        # the sidecars' connection (client to server) is open before tracing is turned on
        m.wait_steady(lambda: m.request("client", "client", URL) == (0, 200), "client -> server: 200")
        yield m


SIDECARS = [("client", "client"), ("server", "server")]


def zipkin_configured(m: LocalMesh, ns: str, pod: str) -> bool:
    cp = m.exec(ns, pod, "curl", "-s", "--max-time", "5", "http://127.0.0.1:15000/config_dump")
    # the tracer's config in a connection manager (the bootstrap lists the zipkin extension anyway)
    return cp.returncode == 0 and "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig" in cp.stdout


def set_tracing(m: LocalMesh, on: bool) -> None:
    """MeshConfig tracing on or off, and wait until both sidecars have it so."""
    (m.manifests / "mesh.yaml").write_text(manifests(on))
    m.wait(
        lambda: all(zipkin_configured(m, *p) == on for p in SIDECARS), 30, f"tracing {on} in both sidecars"
    )


def spans_of(m: LocalMesh, mark: str) -> list[dict[str, Any]]:
    cp = m.exec("tracing", "jaeger", "curl", "-s", "--max-time", "5", f"{COLLECTOR}/api/v2/traces")
    traces = json.loads(cp.stdout) if cp.returncode == 0 and cp.stdout else []
    return [s for t in traces for s in t if s.get("tags", {}).get("http.url") == f"{URL}/{mark}"]


def traced_request(m: LocalMesh) -> str:
    """A request to a path of its own; the mark that names it."""
    mark = str(uuid.uuid4())
    assert m.request("client", "client", f"{URL}/{mark}") == (0, 200)
    return mark


def access_log(m: LocalMesh, ns: str, pod: str, mark: str) -> list[dict[str, Any]]:
    out = []
    for line in Path(m.container(ns, pod, "envoy")["log"]).read_text(errors="replace").splitlines():
        if mark in line and line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_a_request_across_two_sidecars_leaves_a_span_from_each_in_one_trace(mesh: LocalMesh) -> None:
    # Turned on live: the connection between the sidecars opened before is drained at once (Envoy sends
    # GOAWAY with the answer to the next request on it), so the server's sidecar traces the requests
    # after that one too. With Envoy's default gradual drain it went on untraced for up to ten minutes.
    set_tracing(mesh, True)
    for _ in range(3):
        traced_request(mesh)
    mark = traced_request(mesh)
    found: list[dict[str, Any]] = []

    def both() -> bool:
        found[:] = spans_of(mesh, mark)
        return {s.get("kind") for s in found} >= {"CLIENT", "SERVER"}

    mesh.wait(both, ZIPKIN_FLUSH + 25, f"a CLIENT and a SERVER span for /traced/{mark}")
    client = next(s for s in found if s["kind"] == "CLIENT")
    server = next(s for s in found if s["kind"] == "SERVER")
    # one trace, the request id propagated from the client's sidecar to the server's
    assert client["traceId"] == server["traceId"]
    assert client["tags"]["guid:x-request-id"] == server["tags"]["guid:x-request-id"]
    assert (client["localEndpoint"]["serviceName"], server["localEndpoint"]["serviceName"]) == (
        "client.client",
        "server.server",
    )
    assert client["tags"]["upstream_cluster"] == "server/server|8080"
    assert server["tags"]["upstream_cluster"] == "server/server|8080|local"
    # Each sidecar reports as its own pod (the span's local endpoint is the sidecar's pod IP).
    assert client["localEndpoint"]["ipv4"] == mesh.pod("client", "client")["ip"]
    assert server["localEndpoint"]["ipv4"] == mesh.pod("server", "server")["ip"]
    assert client["tags"]["http.status_code"] == server["tags"]["http.status_code"] == "200"


def test_every_sidecar_logs_the_request_in_upstreams_json_format(mesh: LocalMesh) -> None:
    set_tracing(mesh, True)  # the log's request_id is then the trace's
    mark = traced_request(mesh)
    logs: dict[str, list[dict[str, Any]]] = {}

    def logged() -> bool:
        logs["client"] = access_log(mesh, "client", "client", mark)
        logs["server"] = access_log(mesh, "server", "server", mark)
        return bool(logs["client"] and logs["server"])

    mesh.wait(logged, 15, f"an access-log line for /traced/{mark} in both sidecars")
    path = f"/traced/{mark}"
    for side, lines in logs.items():
        (entry,) = lines
        assert set(entry) == set(ACCESS_LOG_FIELDS), side
        assert (entry["method"], entry["path"], entry["response_code"]) == ("GET", path, 200), side
    assert logs["client"][0]["request_id"] == logs["server"][0]["request_id"] != "-"
    assert logs["client"][0]["protocol"] == "HTTP/1.1" and logs["server"][0]["protocol"] == "HTTP/2"
    assert logs["client"][0]["upstream_cluster"] == "server/server|8080"
    assert logs["server"][0]["upstream_cluster"] == "server/server|8080|local"
    assert logs["client"][0]["authority"] == logs["server"][0]["authority"] == "server.server:8080"


def test_tracing_turned_off_live_stops_the_spans(mesh: LocalMesh) -> None:
    set_tracing(mesh, True)
    pids = {p: [c["pid"] for c in mesh.pod(*p)["containers"]] for p in SIDECARS}
    set_tracing(mesh, False)
    mark = traced_request(mesh)
    time.sleep(ZIPKIN_FLUSH + 1)  # a span, had there been one, would have been sent by now
    assert spans_of(mesh, mark) == []
    set_tracing(mesh, True)
    mark = traced_request(mesh)
    mesh.wait(lambda: len(spans_of(mesh, mark)) == 2, ZIPKIN_FLUSH + 25, "spans again once re-enabled")
    assert {p: [c["pid"] for c in mesh.pod(*p)["containers"]] for p in SIDECARS} == pids
