"""Kubernetes core objects the mesh reads, as frozen dataclasses built from Kubernetes JSON.

Each class has `from_k8s(doc)`; unknown fields are ignored, invalid ones raise ValidationError.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from osm.models.errors import ValidationError
from osm.models.fields import Doc

# Labels and annotations of the contract.
LABEL_MONITORED_BY = "openservicemesh.io/monitored-by"
LABEL_IGNORE = "openservicemesh.io/ignore"
LABEL_PROXY_UUID = "osm-proxy-uuid"
# The TCP-probe shim a meshed pod runs when it has TCP probes (upstream's osm-healthcheck): the kubelet
# asks GET :15904/osm-healthcheck with this header naming the app's port.
HEALTHCHECK_PORT = 15904
HEALTHCHECK_PATH = "/osm-healthcheck"
HEALTHCHECK_HEADER = "Original-Tcp-Port"
ANNOTATION_SIDECAR_INJECTION = "openservicemesh.io/sidecar-injection"
ANNOTATION_METRICS = "openservicemesh.io/metrics"
ANNOTATION_NATIVE_SIDECAR = "openservicemesh.io/native-sidecar"
ANNOTATION_OUTBOUND_PORT_EXCLUSION = "openservicemesh.io/outbound-port-exclusion-list"
ANNOTATION_INBOUND_PORT_EXCLUSION = "openservicemesh.io/inbound-port-exclusion-list"
ANNOTATION_OUTBOUND_IP_EXCLUSION = "openservicemesh.io/outbound-ip-range-exclusion-list"
ANNOTATION_OUTBOUND_IP_INCLUSION = "openservicemesh.io/outbound-ip-range-inclusion-list"

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

PROTOCOL_HTTP = "http"
PROTOCOL_TCP = "tcp"
PROTOCOL_GRPC = "grpc"
PROTOCOL_TCP_SERVER_FIRST = "tcp-server-first"
MESH_PROTOCOLS = (PROTOCOL_HTTP, PROTOCOL_TCP, PROTOCOL_GRPC, PROTOCOL_TCP_SERVER_FIRST)
# appProtocol values understood beyond the mesh protocols, and what they mean to the mesh.
_APP_PROTOCOL_ALIASES = {
    "http2": PROTOCOL_HTTP,
    "h2c": PROTOCOL_HTTP,
    "kubernetes.io/h2c": PROTOCOL_HTTP,
    "https": PROTOCOL_TCP,
    "kubernetes.io/ws": PROTOCOL_HTTP,
}


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    name: str
    namespace: str = ""
    labels: Mapping[str, str] = field(default_factory=dict, hash=False, compare=True)
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False, compare=True)
    uid: str = ""

    @staticmethod
    def parse(kind: str, data: Mapping[str, Any], *, namespaced: bool = True) -> ObjectMeta:
        raw_meta = data.get("metadata")
        if not isinstance(raw_meta, Mapping):
            raise ValidationError(kind, "", "", "metadata", "is required and must be an object")
        name = raw_meta.get("name")
        ns = raw_meta.get("namespace") or ("default" if namespaced else "")
        if not isinstance(ns, str):
            raise ValidationError(kind, "", str(name or ""), "metadata.namespace", "must be a string")
        if not isinstance(name, str) or not name:
            raise ValidationError(kind, ns, "", "metadata.name", "is required")
        if kind == "Namespace" and (len(name) > 63 or not _DNS1123_LABEL.match(name)):
            raise ValidationError(
                kind, "", name, "metadata.name", "must be a lowercase RFC 1123 label (a-z, 0-9, '-')"
            )
        if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
            raise ValidationError(
                kind, ns, name, "metadata.name", "must be a lowercase RFC 1123 subdomain (a-z, 0-9, '-', '.')"
            )
        if namespaced and not _DNS1123_LABEL.match(ns):
            raise ValidationError(kind, ns, name, "metadata.namespace", "must be a lowercase RFC 1123 label")
        d = Doc(raw_meta, kind, ns, name, "metadata")
        return ObjectMeta(
            name=name,
            namespace=ns if namespaced else "",
            labels=d.str_map("labels"),
            annotations=d.str_map("annotations"),
            uid=d.str("uid"),
        )


def _doc(kind: str, meta: ObjectMeta, data: Mapping[str, Any]) -> Doc:
    return Doc(data, kind, meta.namespace, meta.name)


def match_labels(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """True when every selector label is present with the same value (an empty selector matches nothing)."""
    if not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


@dataclass(frozen=True, slots=True)
class Namespace:
    KIND: ClassVar[str] = "Namespace"
    meta: ObjectMeta

    @property
    def monitored_by(self) -> str:
        return self.meta.labels.get(LABEL_MONITORED_BY, "")

    @staticmethod
    def from_k8s(data: Mapping[str, Any]) -> Namespace:
        return Namespace(ObjectMeta.parse("Namespace", data, namespaced=False))


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    KIND: ClassVar[str] = "ServiceAccount"
    meta: ObjectMeta

    @staticmethod
    def from_k8s(data: Mapping[str, Any]) -> ServiceAccount:
        return ServiceAccount(ObjectMeta.parse("ServiceAccount", data))


@dataclass(frozen=True, slots=True)
class ServicePort:
    port: int
    target_port: int | str
    name: str = ""
    protocol: str = "TCP"
    app_protocol: str = PROTOCOL_HTTP  # the mesh protocol, after appProtocol / port-name detection


def detect_protocol(port_name: str, app_protocol: str | None) -> str | None:
    """OSM's protocol detection: appProtocol first, then a port-name prefix, else http.

    Returns None for an appProtocol the mesh does not understand.
    """
    if app_protocol:
        p = app_protocol.lower()
        if p in MESH_PROTOCOLS:
            return p
        return _APP_PROTOCOL_ALIASES.get(p)
    name = port_name.lower()
    for proto in (PROTOCOL_TCP_SERVER_FIRST, PROTOCOL_TCP, PROTOCOL_HTTP, PROTOCOL_GRPC):
        if name == proto or name.startswith(proto + "-"):
            return proto
    return PROTOCOL_HTTP


@dataclass(frozen=True, slots=True)
class Service:
    KIND: ClassVar[str] = "Service"
    meta: ObjectMeta
    ports: tuple[ServicePort, ...]
    selector: Mapping[str, str] = field(default_factory=dict, hash=False)
    cluster_ip: str = ""  # "" when not (yet) allocated, "None" for headless services

    @property
    def headless(self) -> bool:
        return self.cluster_ip == "None"

    @staticmethod
    def from_k8s(data: Mapping[str, Any]) -> Service:
        meta = ObjectMeta.parse("Service", data)
        spec = _doc("Service", meta, data).obj("spec")
        ports: list[ServicePort] = []
        seen: set[tuple[int, str]] = set()
        for p in spec.objs("ports"):
            number = p.int("port", required=True, lo=1, hi=65535)
            l4 = p.str("protocol", "TCP").upper()
            if l4 not in ("TCP", "UDP", "SCTP"):
                raise p.error("protocol", f"must be TCP, UDP or SCTP, got {l4!r}")
            if (number, l4) in seen:
                raise p.error("port", f"duplicate port {number}/{l4}")
            seen.add((number, l4))
            raw_target = p.raw("targetPort")
            target: int | str
            if raw_target is None:
                target = number
            elif isinstance(raw_target, bool):
                raise p.error("targetPort", "must be a port number or a port name")
            elif isinstance(raw_target, int):
                if not 1 <= raw_target <= 65535:
                    raise p.error("targetPort", f"must be between 1 and 65535, got {raw_target}")
                target = raw_target
            elif isinstance(raw_target, str) and raw_target:
                target = _port_ref(p, "targetPort")
            else:
                raise p.error("targetPort", "must be a port number or a port name")
            name = p.str("name")
            app = p.raw("appProtocol")
            if app is not None and not isinstance(app, str):
                raise p.error("appProtocol", "must be a string")
            proto = detect_protocol(name, app)
            if proto is None:
                raise p.error(
                    "appProtocol",
                    f"unsupported protocol {app!r}; the mesh understands {', '.join(MESH_PROTOCOLS)}",
                )
            ports.append(
                ServicePort(port=number, target_port=target, name=name, protocol=l4, app_protocol=proto)
            )
        if len(ports) > 1 and any(not p.name for p in ports):
            raise spec.error("ports", "every port needs a name when a Service has several ports")
        cluster_ip = spec.str("clusterIP")
        if cluster_ip and cluster_ip != "None":
            try:
                ipaddress.ip_address(cluster_ip)
            except ValueError:
                raise spec.error("clusterIP", f"{cluster_ip!r} is not an IP address") from None
        return Service(
            meta=meta, ports=tuple(ports), selector=spec.str_map("selector"), cluster_ip=cluster_ip
        )


@dataclass(frozen=True, slots=True)
class ContainerPort:
    container_port: int
    name: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str
    value: str
    field_path: str = ""  # valueFrom.fieldRef: filled in from the pod (the downward API)
    source: str = ""  # another valueFrom (secretKeyRef, configMapKeyRef, resourceFieldRef): its kind


# The pod fields an env var may take with valueFrom.fieldRef (the downward API), labels and annotations
# by key as metadata.labels['<key>'] and metadata.annotations['<key>']
ENV_FIELD_PATHS = frozenset(
    {
        "metadata.name",
        "metadata.namespace",
        "metadata.uid",
        "spec.nodeName",
        "spec.serviceAccountName",
        "status.hostIP",
        "status.hostIPs",
        "status.podIP",
        "status.podIPs",
    }
)
_KEYED_FIELD = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]")


def _env_var(e: Doc) -> EnvVar:
    name = e.str("name", required=True)
    if not e.has("valueFrom"):
        return EnvVar(name, e.str("value"))
    source = e.obj("valueFrom")
    if source.has("fieldRef"):
        path = source.obj("fieldRef").str("fieldPath", required=True)
        if path not in ENV_FIELD_PATHS and not _KEYED_FIELD.fullmatch(path):
            raise source.error(
                "fieldRef.fieldPath", f"{path[:64]!r} is not a pod field the downward API gives"
            )
        return EnvVar(name, "", field_path=path)
    kinds = [k for k in ("secretKeyRef", "configMapKeyRef", "resourceFieldRef") if source.has(k)]
    if not kinds:
        raise source.error("", "needs fieldRef, secretKeyRef, configMapKeyRef or resourceFieldRef")
    return EnvVar(name, "", source=kinds[0])


@dataclass(frozen=True, slots=True)
class Probe:
    """A container probe: exactly one of http_get (path) / tcp_socket / exec_command is set."""

    kind: str  # "httpGet" | "tcpSocket" | "exec"
    port: int | str = 0
    path: str = ""
    scheme: str = "HTTP"
    command: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # httpGet's httpHeaders
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    failure_threshold: int = 3

    @staticmethod
    def parse(d: Doc) -> Probe:
        def make(
            kind: str,
            *,
            port: int | str = 0,
            path: str = "",
            scheme: str = "HTTP",
            command: tuple[str, ...] = (),
            headers: tuple[tuple[str, str], ...] = (),
        ) -> Probe:
            return Probe(
                kind=kind,
                port=port,
                path=path,
                scheme=scheme,
                command=command,
                headers=headers,
                initial_delay_seconds=d.int("initialDelaySeconds", 0, lo=0),
                period_seconds=d.int("periodSeconds", 10, lo=1),
                timeout_seconds=d.int("timeoutSeconds", 1, lo=1),
                failure_threshold=d.int("failureThreshold", 3, lo=1),
            )

        if d.has("httpGet"):
            h = d.obj("httpGet")
            return make(
                "httpGet",
                port=_port_ref(h, "port"),
                path=h.str("path", "/"),
                scheme=h.str("scheme", "HTTP").upper(),
                headers=tuple(_http_header(x) for x in h.objs("httpHeaders")),
            )
        if d.has("tcpSocket"):
            return make("tcpSocket", port=_port_ref(d.obj("tcpSocket"), "port"))
        if d.has("exec"):
            return make("exec", command=d.obj("exec").strs("command"))
        raise d.error("", "a probe needs one of httpGet, tcpSocket or exec")


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _http_header(d: Doc) -> tuple[str, str]:
    name, value = d.str("name", required=True), d.str("value")
    if not _HEADER_NAME.fullmatch(name):
        raise d.error("name", f"{name[:64]!r} is not an HTTP header name")
    if "\r" in value or "\n" in value:
        raise d.error("value", "must not contain a line break")
    return name, value


def _port_ref(d: Doc, key: str) -> int | str:
    v = d.raw(key)
    if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535:
        return v
    if isinstance(v, str) and v and not v.isdigit():
        return v
    if isinstance(v, str) and v.isdigit() and 1 <= int(v) <= 65535:
        return int(v)
    raise d.error(key, "must be a port number between 1 and 65535, or a port name")


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    image: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    startup_probe: Probe | None = None
    run_as_user: int | None = None

    @staticmethod
    def parse(d: Doc) -> Container:
        ports = []
        for p in d.objs("ports"):
            ports.append(
                ContainerPort(
                    container_port=p.int("containerPort", required=True, lo=1, hi=65535),
                    name=p.str("name"),
                    protocol=p.str("protocol", "TCP").upper(),
                )
            )
        env = [_env_var(e) for e in d.objs("env")]
        sc = d.obj("securityContext")
        return Container(
            name=d.str("name", required=True),
            image=d.str("image"),
            command=d.strs("command"),
            args=d.strs("args"),
            env=tuple(env),
            ports=tuple(ports),
            readiness_probe=Probe.parse(d.obj("readinessProbe")) if d.has("readinessProbe") else None,
            liveness_probe=Probe.parse(d.obj("livenessProbe")) if d.has("livenessProbe") else None,
            startup_probe=Probe.parse(d.obj("startupProbe")) if d.has("startupProbe") else None,
            run_as_user=sc.int("runAsUser", lo=0) if sc.has("runAsUser") else None,
        )


@dataclass(frozen=True, slots=True)
class PodSpec:
    service_account: str = "default"
    containers: tuple[Container, ...] = ()
    init_containers: tuple[Container, ...] = ()
    host_network: bool = False
    host_aliases: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (ip, hostnames): extra /etc/hosts lines
    hostname: str = ""  # with subdomain (a headless Service): <hostname>.<subdomain>.<ns>.svc resolves
    subdomain: str = ""

    @staticmethod
    def parse(d: Doc) -> PodSpec:
        containers = tuple(Container.parse(c) for c in d.objs("containers"))
        names = [c.name for c in containers]
        if len(set(names)) != len(names):
            raise d.error("containers", "container names must be unique")
        sa = d.str("serviceAccountName") or d.str("serviceAccount") or "default"
        if len(sa) > 63 or not _DNS1123_LABEL.match(sa):
            # The mesh carries identities in certificate names as <sa>.<ns>: a dot would be ambiguous.
            raise d.error("serviceAccountName", f"{sa!r} must be a lowercase RFC 1123 label (a-z, 0-9, '-')")
        return PodSpec(
            service_account=sa,
            containers=containers,
            init_containers=tuple(Container.parse(c) for c in d.objs("initContainers")),
            host_network=d.bool("hostNetwork"),
            host_aliases=tuple(_host_alias(a) for a in d.objs("hostAliases")),
            hostname=_dns_label(d, "hostname"),
            subdomain=_dns_label(d, "subdomain"),
        )

    def container_port(self, name: str) -> int | None:
        for c in self.containers:
            for p in c.ports:
                if p.name == name:
                    return p.container_port
        return None


def _dns_label(d: Doc, key: str) -> str:
    value = d.str(key)
    if value and (len(value) > 63 or not _DNS1123_LABEL.match(value)):
        raise d.error(key, f"{value[:64]!r} must be a lowercase RFC 1123 label (a-z, 0-9, '-')")
    return value


def _host_alias(d: Doc) -> tuple[str, tuple[str, ...]]:
    ip = d.str("ip", required=True)
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise d.error("ip", f"{ip[:64]!r} is not an IP address") from None
    names = d.strs("hostnames")
    for i, name in enumerate(names):
        if not name or any(c.isspace() for c in name) or len(name) > 253:
            raise d.error(f"hostnames[{i}]", f"{name[:64]!r} is not a host name")
    return ip, names


@dataclass(frozen=True, slots=True)
class Pod:
    KIND: ClassVar[str] = "Pod"
    meta: ObjectMeta
    spec: PodSpec
    pod_ip: str = ""
    ready: bool = True

    @property
    def service_account(self) -> str:
        return self.spec.service_account

    @property
    def proxy_uuid(self) -> str:
        return self.meta.labels.get(LABEL_PROXY_UUID, "")

    @staticmethod
    def from_k8s(data: Mapping[str, Any]) -> Pod:
        meta = ObjectMeta.parse("Pod", data)
        d = _doc("Pod", meta, data)
        spec = PodSpec.parse(d.obj("spec"))
        status = d.obj("status")
        ip = status.str("podIP")
        if ip:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise status.error("podIP", f"{ip!r} is not an IP address") from None
        ready = True
        for c in status.objs("conditions"):
            if c.str("type") == "Ready":
                ready = c.str("status") == "True"
        if status.str("phase") in ("Failed", "Succeeded"):
            ready = False
        return Pod(meta=meta, spec=spec, pod_ip=ip, ready=ready)


@dataclass(frozen=True, slots=True)
class EndpointPort:
    port: int
    name: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True, slots=True)
class EndpointAddress:
    ip: str
    ready: bool = True
    pod_name: str = ""  # targetRef of kind Pod, when given


@dataclass(frozen=True, slots=True)
class EndpointSubset:
    addresses: tuple[EndpointAddress, ...]
    ports: tuple[EndpointPort, ...]


def _address(d: Doc, key: str, ready: bool) -> EndpointAddress:
    ip = d.str(key, required=True)
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise d.error(key, f"{ip!r} is not an IP address") from None
    ref = d.obj("targetRef")
    return EndpointAddress(ip=ip, ready=ready, pod_name=ref.str("name") if ref.str("kind") == "Pod" else "")


def _endpoint_ports(d: Doc) -> tuple[EndpointPort, ...]:
    return tuple(
        EndpointPort(
            port=p.int("port", required=True, lo=1, hi=65535),
            name=p.str("name"),
            protocol=p.str("protocol", "TCP").upper(),
        )
        for p in d.objs("ports")
    )


@dataclass(frozen=True, slots=True)
class Endpoints:
    """core/v1 Endpoints; `service` is the Service it belongs to (same name)."""

    KIND: ClassVar[str] = "Endpoints"
    meta: ObjectMeta
    subsets: tuple[EndpointSubset, ...]

    @property
    def service(self) -> str:
        return self.meta.name

    @staticmethod
    def from_k8s(data: Mapping[str, Any]) -> Endpoints:
        meta = ObjectMeta.parse("Endpoints", data)
        d = _doc("Endpoints", meta, data)
        subsets = []
        for s in d.objs("subsets"):
            addrs = [_address(a, "ip", True) for a in s.objs("addresses")]
            addrs += [_address(a, "ip", False) for a in s.objs("notReadyAddresses")]
            subsets.append(EndpointSubset(addresses=tuple(addrs), ports=_endpoint_ports(s)))
        return Endpoints(meta=meta, subsets=tuple(subsets))


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    """discovery.k8s.io/v1 EndpointSlice, normalised to one subset."""

    KIND: ClassVar[str] = "EndpointSlice"
    meta: ObjectMeta
    service: str
    subset: EndpointSubset

    @staticmethod
    def from_k8s(data: Mapping[str, Any]) -> EndpointSlice:
        meta = ObjectMeta.parse("EndpointSlice", data)
        d = _doc("EndpointSlice", meta, data)
        service = meta.labels.get("kubernetes.io/service-name", "")
        if not service:
            raise d.error("metadata.labels", "label kubernetes.io/service-name is required")
        family = d.str("addressType", "IPv4")
        if family not in ("IPv4", "IPv6", "FQDN"):
            raise d.error("addressType", f"must be IPv4, IPv6 or FQDN, got {family!r}")
        addrs = []
        if family != "FQDN":
            for e in d.objs("endpoints"):
                ready = e.obj("conditions").bool("ready", True)
                ref = e.obj("targetRef")
                for i, ip in enumerate(e.strs("addresses")):
                    try:
                        ipaddress.ip_address(ip)
                    except ValueError:
                        raise e.error(f"addresses[{i}]", f"{ip!r} is not an IP address") from None
                    addrs.append(
                        EndpointAddress(
                            ip=ip, ready=ready, pod_name=ref.str("name") if ref.str("kind") == "Pod" else ""
                        )
                    )
        return EndpointSlice(
            meta=meta,
            service=service,
            subset=EndpointSubset(addresses=tuple(addrs), ports=_endpoint_ports(d)),
        )


@dataclass(frozen=True, slots=True)
class PodTemplate:
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    spec: PodSpec = field(default_factory=PodSpec)


def _workload(kind: str, data: Mapping[str, Any]) -> tuple[ObjectMeta, Doc, Mapping[str, str], PodTemplate]:
    """A workload's metadata, spec, selector and pod template, checked as the API server does."""
    meta = ObjectMeta.parse(kind, data)
    spec = _doc(kind, meta, data).obj("spec", required=True)
    selector = spec.obj("selector", required=True).str_map("matchLabels")
    if not selector:
        raise spec.error("selector.matchLabels", "is required")
    tmpl = spec.obj("template", required=True)
    tmeta = tmpl.obj("metadata")
    labels = tmeta.str_map("labels")
    if not match_labels(selector, labels):
        raise tmpl.error("metadata.labels", "must match spec.selector.matchLabels")
    template = PodTemplate(
        labels=labels,
        annotations=tmeta.str_map("annotations"),
        spec=PodSpec.parse(tmpl.obj("spec", required=True)),
    )
    return meta, spec, selector, template


@dataclass(frozen=True, slots=True)
class Deployment:
    KIND: ClassVar[str] = "Deployment"
    meta: ObjectMeta
    replicas: int
    selector: Mapping[str, str] = field(hash=False)
    template: PodTemplate

    @staticmethod
    def from_k8s(data: Mapping[str, Any]) -> Deployment:
        meta, spec, selector, template = _workload("Deployment", data)
        return Deployment(
            meta=meta, replicas=spec.int("replicas", 1, lo=0), selector=selector, template=template
        )


@dataclass(frozen=True, slots=True)
class StatefulSet:
    """Pods with stable names `<name>-0`..`<name>-(N-1)`, each `<pod>.<serviceName>` in DNS."""

    KIND: ClassVar[str] = "StatefulSet"
    meta: ObjectMeta
    replicas: int
    service_name: str
    selector: Mapping[str, str] = field(hash=False)
    template: PodTemplate
    parallel: bool = False  # podManagementPolicy Parallel (default OrderedReady: one at a time, in order)

    @staticmethod
    def from_k8s(data: Mapping[str, Any]) -> StatefulSet:
        meta, spec, selector, template = _workload("StatefulSet", data)
        policy = spec.str("podManagementPolicy") or "OrderedReady"
        if policy not in ("OrderedReady", "Parallel"):
            raise spec.error("podManagementPolicy", f"{policy!r} is neither OrderedReady nor Parallel")
        return StatefulSet(
            meta=meta,
            replicas=spec.int("replicas", 1, lo=0),
            service_name=_dns_label(spec, "serviceName"),
            selector=selector,
            template=template,
            parallel=policy == "Parallel",
        )
