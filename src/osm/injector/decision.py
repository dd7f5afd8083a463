"""Whether a pod gets a sidecar: upstream OSM's `mustInject`, as a pure function."""

from __future__ import annotations

from collections.abc import Mapping

from osm.models.k8s import ANNOTATION_SIDECAR_INJECTION, LABEL_IGNORE, Namespace

ENABLED = frozenset({"enabled", "yes", "true"})
DISABLED = frozenset({"disabled", "no", "false"})
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public"})


class InjectionError(ValueError):
    pass


def _verdict(value: str, where: str) -> bool:
    v = value.strip().lower()
    if v in ENABLED:
        return True
    if v in DISABLED:
        return False
    raise InjectionError(
        f"{where} annotation {ANNOTATION_SIDECAR_INJECTION}={value!r}: "
        "must be enabled|yes|true or disabled|no|false"
    )


def must_inject(
    namespace: Namespace | None,
    pod_annotations: Mapping[str, str],
    *,
    host_network: bool,
    mesh_name: str,
    osm_namespace: str,
) -> bool:
    """A pod in a namespace monitored by this mesh gets a sidecar unless an annotation disables it."""
    if namespace is None or host_network:
        return False
    name = namespace.meta.name
    if name in SYSTEM_NAMESPACES or name == osm_namespace:
        return False
    if namespace.monitored_by != mesh_name or LABEL_IGNORE in namespace.meta.labels:
        return False
    pod_value = pod_annotations.get(ANNOTATION_SIDECAR_INJECTION)
    if pod_value is not None:
        return _verdict(pod_value, "pod")
    ns_value = namespace.meta.annotations.get(ANNOTATION_SIDECAR_INJECTION)
    if ns_value is not None:
        return _verdict(ns_value, f"namespace {name}")
    return True
