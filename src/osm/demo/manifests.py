"""Facts about the demo's manifests (`demo/`) that its walk-through, its tests and its benchmarks share."""

from __future__ import annotations

# The meshed pods, as (namespace, name prefix): Deployments name their pods <deployment>-<hash>-<id>.
SIDECARS = [
    ("bookbuyer", "bookbuyer-"),
    ("bookthief", "bookthief-"),
    ("bookstore", "bookstore-v1-"),
    ("bookstore", "bookstore-v2-"),
    ("bookwarehouse", "bookwarehouse-"),
    ("bookwarehouse", "redis-"),
]

# Lets bookthief buy from both bookstore versions (upstream demo's step 3), appended to 40-policies.yaml
# or written as a file of its own.
THIEF_TARGET = """
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: bookthief-access-bookstore, namespace: bookstore}
spec:
  destination: {kind: ServiceAccount, name: bookstore-v1, namespace: bookstore}
  rules:
  - {kind: HTTPRouteGroup, name: bookstore-service-routes, matches: [buy-a-book, books-bought]}
  sources:
  - {kind: ServiceAccount, name: bookthief, namespace: bookthief}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: bookthief-access-bookstore-v2, namespace: bookstore}
spec:
  destination: {kind: ServiceAccount, name: bookstore-v2, namespace: bookstore}
  rules:
  - {kind: HTTPRouteGroup, name: bookstore-service-routes, matches: [buy-a-book, books-bought]}
  sources:
  - {kind: ServiceAccount, name: bookthief, namespace: bookthief}
"""
