"""The chart's CRDs, applied with the real kubectl: each kind takes a realistic object, MeshConfig gets
its defaults, the schema refuses wrong types, and leaves the mesh's own rules (a TrafficTarget's
destination namespace, a split weight that does not parse) to the validating webhook."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest
import yaml

from osm.paths import CHART

from .conftest import Cluster

SAMPLES = """
apiVersion: v1
kind: Namespace
metadata: {name: osm-system}
---
apiVersion: v1
kind: Namespace
metadata: {name: bookstore}
---
apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshConfig
metadata: {name: osm-mesh-config, namespace: osm-system}
spec:
  traffic: {enablePermissiveTrafficPolicyMode: false}
  sidecar: {resources: {limits: {cpu: 500m, memory: 128Mi}}}
---
apiVersion: config.openservicemesh.io/v1alpha2
kind: MeshRootCertificate
metadata: {name: osm-mesh-root-certificate, namespace: osm-system}
spec:
  trustDomain: cluster.local
  provider: {tresor: {ca: {secretRef: {name: osm-ca-bundle, namespace: osm-system}}}}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: bookbuyer-access-bookstore, namespace: bookstore}
spec:
  destination: {kind: ServiceAccount, name: bookstore, namespace: bookstore}
  rules: [{kind: HTTPRouteGroup, name: bookstore-service-routes, matches: [buy-a-book, books-bought]}]
  sources: [{kind: ServiceAccount, name: bookbuyer, namespace: bookbuyer}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: bookstore-service-routes, namespace: bookstore}
spec:
  matches:
    - name: books-bought
      pathRegex: /books-bought
      methods: [GET]
      headers: {user-agent: ".*-http-client/*.*"}
    - {name: buy-a-book, pathRegex: ".*a-book.*new", methods: [GET]}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: tcp-route, namespace: bookstore}
spec:
  matches: {ports: [3306]}
---
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: bookstore-split, namespace: bookstore}
spec:
  service: bookstore
  backends: [{service: bookstore-v1, weight: 75}, {service: bookstore-v2, weight: 25}]
---
apiVersion: policy.openservicemesh.io/v1alpha1
kind: Egress
metadata: {name: httpbin, namespace: bookstore}
spec:
  sources: [{kind: ServiceAccount, name: curl, namespace: bookstore}]
  hosts: [httpbin.org]
  ports: [{number: 80, protocol: http}]
---
apiVersion: policy.openservicemesh.io/v1alpha1
kind: IngressBackend
metadata: {name: bookstore, namespace: bookstore}
spec:
  backends: [{name: bookstore, port: {number: 14001, protocol: http}}]
  sources: [{kind: Service, namespace: ingress-nginx, name: ingress-nginx-controller}]
---
apiVersion: policy.openservicemesh.io/v1alpha1
kind: Retry
metadata: {name: retry, namespace: bookstore}
spec:
  source: {kind: ServiceAccount, name: bookbuyer, namespace: bookbuyer}
  destinations: [{kind: Service, name: bookstore, namespace: bookstore}]
  retryPolicy: {retryOn: 5xx, perTryTimeout: 1s, numRetries: 5, retryBackoffBaseInterval: 1s}
---
apiVersion: policy.openservicemesh.io/v1alpha1
kind: UpstreamTrafficSetting
metadata: {name: bookstore, namespace: bookstore}
spec:
  host: bookstore.bookstore.svc.cluster.local
  connectionSettings: {tcp: {maxConnections: 100}, http: {maxPendingRequests: 10}}
  rateLimit: {local: {http: {requests: 10, unit: minute}}}
  httpRoutes: [{path: /books, rateLimit: {local: {http: {requests: 1, unit: second}}}}]
"""


def crd_files() -> list[str]:
    return sorted(str(p) for p in (CHART / "crds").glob("*.yaml"))


def test_every_crd_validates_against_the_kubernetes_schemas() -> None:
    files = crd_files()
    assert len(files) == 10
    for path in files:
        with open(path) as f:
            docs = list(yaml.safe_load_all(f))
        for doc in docs:
            kubernetes_validate.validate(doc, "1.33.0", strict=True)


def test_each_kind_takes_a_realistic_object_and_meshconfig_gets_its_defaults(cluster: Cluster) -> None:
    for path in crd_files():
        cluster.kubectl("apply", "--server-side", "-f", path)
    names = cluster.kubectl("get", "crd", "-o", "name").split()
    assert len([n for n in names if "smi-spec.io" in n or "openservicemesh.io" in n]) == 10
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=SAMPLES)
    mesh = json.loads(
        cluster.kubectl("get", "meshconfig", "osm-mesh-config", "-n", "osm-system", "-o", "json")
    )
    spec = mesh["spec"]
    assert spec["certificate"] == {"serviceCertValidityDuration": "24h", "certKeyBitSize": 2048}
    assert spec["sidecar"]["logLevel"] == "error" and spec["sidecar"]["tlsMinProtocolVersion"] == "TLSv1_2"
    assert spec["sidecar"]["resources"] == {"limits": {"cpu": "500m", "memory": "128Mi"}}
    assert spec["traffic"]["enablePermissiveTrafficPolicyMode"] is False
    for kind in (
        "traffictarget",
        "httproutegroup",
        "tcproute",
        "trafficsplit",
        "egress",
        "ingressbackend",
        "retry",
        "upstreamtrafficsetting",
    ):
        assert json.loads(cluster.kubectl("get", kind, "-n", "bookstore", "-o", "json"))["items"], kind


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ('{"spec": {"sidecar": {"logLevel": "loud"}}}', 'Unsupported value: "loud"'),
        ('{"spec": {"traffic": {"enableEgress": "yes"}}}', "spec.traffic.enableEgress"),
    ],
)
def test_the_schema_refuses_wrong_types_and_values(cluster: Cluster, patch: str, message: str) -> None:
    for path in crd_files():
        cluster.kubectl("apply", "--server-side", "-f", path)
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=SAMPLES)
    cp = cluster.run(
        "kubectl", "patch", "meshconfig", "osm-mesh-config", "-n", "osm-system", "--type=merge", "-p", patch
    )
    assert cp.returncode != 0 and message in cp.stderr, cp.stderr


def test_the_mesh_rules_are_left_to_the_validator(cluster: Cluster) -> None:
    """Without the webhook (none registered here) these pass the schema: the validator, not the CRD,
    owns these rules, so its message is what users see (tests/contract/test_kubernetes_mesh.py)."""
    for path in crd_files():
        cluster.kubectl("apply", "--server-side", "-f", path)
    cluster.kubectl("create", "namespace", "bookstore")
    wrong_namespace = SAMPLES.split("---")[4].replace(
        "namespace: bookstore}\n  rules", "namespace: bookbuyer}\n  rules"
    )
    assert "destination: {kind: ServiceAccount, name: bookstore, namespace: bookbuyer}" in wrong_namespace
    cluster.kubectl("apply", "-f", "-", stdin=wrong_namespace)
    split = SAMPLES.split("---")[7].replace("weight: 25", "weight: twenty-five")
    cluster.kubectl("apply", "-f", "-", stdin=split)
