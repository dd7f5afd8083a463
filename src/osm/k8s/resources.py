"""The API resources the mesh reads and writes, and their paths."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from osm.apis.meshconfig import CONFIG_API
from osm.apis.policy import POLICY_API
from osm.smi.models import ACCESS_API, SPECS_API, SPLIT_API


@dataclass(frozen=True, slots=True)
class Resource:
    api_version: str  # "v1" or "group/version"
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    def path(self, namespace: str = "", name: str = "") -> str:
        """The collection (all namespaces when `namespace` is ""), or one object when `name` is given."""
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return f"{base}/{quote(name, safe='')}" if name else base

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


NAMESPACES = Resource("v1", "Namespace", "namespaces", namespaced=False)
SERVICES = Resource("v1", "Service", "services")
PODS = Resource("v1", "Pod", "pods")
SERVICE_ACCOUNTS = Resource("v1", "ServiceAccount", "serviceaccounts")
ENDPOINT_SLICES = Resource("discovery.k8s.io/v1", "EndpointSlice", "endpointslices")
SECRETS = Resource("v1", "Secret", "secrets")
CONFIG_MAPS = Resource("v1", "ConfigMap", "configmaps")
TRAFFIC_TARGETS = Resource(ACCESS_API, "TrafficTarget", "traffictargets")
HTTP_ROUTE_GROUPS = Resource(SPECS_API, "HTTPRouteGroup", "httproutegroups")
TCP_ROUTES = Resource(SPECS_API, "TCPRoute", "tcproutes")
TRAFFIC_SPLITS = Resource(SPLIT_API, "TrafficSplit", "trafficsplits")
MESH_CONFIGS = Resource(CONFIG_API, "MeshConfig", "meshconfigs")
RETRIES = Resource(POLICY_API, "Retry", "retries")
EGRESSES = Resource(POLICY_API, "Egress", "egresses")
INGRESS_BACKENDS = Resource(POLICY_API, "IngressBackend", "ingressbackends")
UPSTREAM_TRAFFIC_SETTINGS = Resource(POLICY_API, "UpstreamTrafficSetting", "upstreamtrafficsettings")
CRDS = Resource("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False)
MUTATING_WEBHOOKS = Resource(
    "admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", False
)
VALIDATING_WEBHOOKS = Resource(
    "admissionregistration.k8s.io/v1",
    "ValidatingWebhookConfiguration",
    "validatingwebhookconfigurations",
    False,
)

# What the controller watches. Namespaces come first: they decide which namespaces are in the mesh.
MESH_NAMESPACED = (
    SERVICES,
    PODS,
    SERVICE_ACCOUNTS,
    ENDPOINT_SLICES,
    TRAFFIC_TARGETS,
    HTTP_ROUTE_GROUPS,
    TCP_ROUTES,
    TRAFFIC_SPLITS,
    RETRIES,
    UPSTREAM_TRAFFIC_SETTINGS,
    INGRESS_BACKENDS,
    EGRESSES,
)
