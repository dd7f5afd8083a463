"""The API types fakekube serves: the built-in kinds of the groups the chart and the mesh use, and custom
resources once their CustomResourceDefinition exists."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ApiType:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    singular: str = ""
    status_subresource: bool = False
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)  # CRDs: openAPIV3Schema
    categories: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def resource_entry(self) -> dict[str, Any]:
        """This type in an APIResourceList."""
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        out: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular or self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
        }
        if self.short_names:
            out["shortNames"] = list(self.short_names)
        if self.categories:
            out["categories"] = list(self.categories)
        return out


def _t(
    gv: str, plural: str, kind: str, namespaced: bool = True, *short: str, status: bool = False
) -> ApiType:
    group, _, version = gv.rpartition("/")
    return ApiType(group, version, plural, kind, namespaced, tuple(short), status_subresource=status)


BUILTIN: tuple[ApiType, ...] = (
    _t("v1", "namespaces", "Namespace", False, "ns", status=True),
    _t("v1", "pods", "Pod", True, "po", status=True),
    _t("v1", "services", "Service", True, "svc", status=True),
    _t("v1", "endpoints", "Endpoints", True, "ep"),
    _t("v1", "serviceaccounts", "ServiceAccount", True, "sa"),
    _t("v1", "configmaps", "ConfigMap", True, "cm"),
    _t("v1", "secrets", "Secret", True),
    _t("v1", "events", "Event", True, "ev"),
    _t("v1", "nodes", "Node", False, "no", status=True),
    _t("v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, "pvc", status=True),
    _t("apps/v1", "deployments", "Deployment", True, "deploy", status=True),
    _t("apps/v1", "replicasets", "ReplicaSet", True, "rs", status=True),
    _t("apps/v1", "statefulsets", "StatefulSet", True, "sts", status=True),
    _t("apps/v1", "daemonsets", "DaemonSet", True, "ds", status=True),
    _t("batch/v1", "jobs", "Job", True, status=True),
    _t("batch/v1", "cronjobs", "CronJob", True, "cj", status=True),
    _t("rbac.authorization.k8s.io/v1", "roles", "Role", True),
    _t("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding", True),
    _t("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", False),
    _t("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", False),
    _t("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", True, "pdb", status=True),
    _t("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True, "hpa", status=True),
    _t("discovery.k8s.io/v1", "endpointslices", "EndpointSlice", True),
    _t("coordination.k8s.io/v1", "leases", "Lease", True),
    _t(
        "admissionregistration.k8s.io/v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
    ),
    _t(
        "admissionregistration.k8s.io/v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        False,
    ),
    _t(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        "crd",
        "crds",
        status=True,
    ),
)

CRD = next(t for t in BUILTIN if t.kind == "CustomResourceDefinition")


def types_of_crd(crd: dict[str, Any]) -> list[ApiType]:
    """The served versions of a CustomResourceDefinition, as API types."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for v in spec.get("versions") or []:
        if not v.get("served", True):
            continue
        schema = ((v.get("schema") or {}).get("openAPIV3Schema")) or None
        out.append(
            ApiType(
                group=spec.get("group", ""),
                version=v.get("name", ""),
                plural=names.get("plural", ""),
                kind=names.get("kind", ""),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                singular=names.get("singular", ""),
                status_subresource="status" in (v.get("subresources") or {}),
                schema=schema,
                categories=tuple(names.get("categories") or ()),
            )
        )
    return out
