"""Kubernetes objects tests build often."""

from __future__ import annotations

from typing import Any

from osm.k8s.resources import Resource


def open_crd(resource: Resource) -> dict[str, Any]:
    """A CRD serving `resource` with an open schema (any fields): for tests of what the mesh does with
    objects, not of the CRD's own validation (that is the chart's CRDs' test)."""
    group, _, version = resource.api_version.partition("/")
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{resource.plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced" if resource.namespaced else "Cluster",
            "names": {
                "kind": resource.kind,
                "plural": resource.plural,
                "singular": resource.kind.lower(),
                "listKind": f"{resource.kind}List",
            },
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }
