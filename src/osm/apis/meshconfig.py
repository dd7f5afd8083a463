"""MeshConfig (config.openservicemesh.io/v1alpha2).

Fail closed: a boolean the MeshConfig leaves out is false, as in upstream (Go's zero value), so a
MeshConfig without `enablePermissiveTrafficPolicyMode` (or with it misspelt) runs the mesh in SMI mode
with egress off; so does a mesh without a MeshConfig (`MeshConfig()`). Other fields left out take
upstream's defaults. A field upstream's schema does not have is rejected, naming the field and the
closest known one, rather than silently ignored.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from osm.models.fields import Doc, parse_duration
from osm.models.k8s import ObjectMeta
from osm.models.trafficpolicy import Tracing

CONFIG_API = "config.openservicemesh.io/v1alpha2"
MESH_CONFIG_NAME = "osm-mesh-config"
LOG_LEVELS = ("trace", "debug", "info", "warning", "warn", "error", "critical", "off")
TLS_VERSIONS = ("TLS_AUTO", "TLSv1_0", "TLSv1_1", "TLSv1_2", "TLSv1_3")
LOCAL_PROXY_MODES = ("Localhost", "PodIP")


@dataclass(frozen=True, slots=True)
class SidecarSpec:
    enable_privileged_init_container: bool = False
    log_level: str = "error"
    max_data_plane_connections: int = 0
    config_resync_interval: float = 0.0
    tls_min_protocol_version: str = "TLSv1_2"
    tls_max_protocol_version: str = "TLSv1_3"
    local_proxy_mode: str = "Localhost"
    envoy_image: str = ""  # "" : the injector's default
    init_container_image: str = ""
    resources_json: str = ""  # the sidecar's ResourceRequirements, canonical JSON ("" when unset)
    # Beyond upstream: Envoy as a native sidecar (an init container with restartPolicy Always, 1.29+)
    enable_native_sidecar: bool = False


@dataclass(frozen=True, slots=True)
class TrafficSpec:
    enable_egress: bool = False
    enable_permissive_traffic_policy_mode: bool = False
    outbound_ip_range_exclusion_list: tuple[str, ...] = ()
    outbound_ip_range_inclusion_list: tuple[str, ...] = ()
    outbound_port_exclusion_list: tuple[int, ...] = ()
    inbound_port_exclusion_list: tuple[int, ...] = ()
    network_interface_exclusion_list: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IngressGatewayCertSpec:
    """A client certificate the mesh issues for an ingress gateway (its mTLS to IngressBackends), kept in
    Secret `secret_namespace/secret_name` (keys tls.crt, tls.key, ca.crt) and renewed before it expires."""

    subject_alt_names: tuple[str, ...]
    validity_duration: float
    secret_name: str
    secret_namespace: str


@dataclass(frozen=True, slots=True)
class CertificateSpec:
    service_cert_validity_duration: float = 24 * 3600.0
    cert_key_bit_size: int = 2048
    ingress_gateway: IngressGatewayCertSpec | None = None


@dataclass(frozen=True, slots=True)
class ObservabilitySpec:
    osm_log_level: str = "info"
    enable_debug_server: bool = False
    tracing: Tracing | None = None  # None: tracing off


@dataclass(frozen=True, slots=True)
class FeatureFlags:
    enable_wasm_stats: bool = False
    enable_egress_policy: bool = False
    enable_envoy_active_health_checks: bool = False
    enable_retry_policy: bool = False


@dataclass(frozen=True, slots=True)
class MeshConfig:
    KIND: ClassVar[str] = "MeshConfig"
    meta: ObjectMeta = field(
        default_factory=lambda: ObjectMeta(name=MESH_CONFIG_NAME, namespace="osm-system")
    )
    sidecar: SidecarSpec = field(default_factory=SidecarSpec)
    traffic: TrafficSpec = field(default_factory=TrafficSpec)
    certificate: CertificateSpec = field(default_factory=CertificateSpec)
    observability: ObservabilitySpec = field(default_factory=ObservabilitySpec)
    feature_flags: FeatureFlags = field(default_factory=FeatureFlags)

    @property
    def permissive(self) -> bool:
        return self.traffic.enable_permissive_traffic_policy_mode

    @staticmethod
    def from_k8s(data: Mapping[str, Any]) -> MeshConfig:
        meta = ObjectMeta.parse("MeshConfig", data)
        spec = Doc(data, "MeshConfig", meta.namespace, meta.name).obj("spec")
        _check_fields(spec, SPEC_FIELDS)
        s, t, c, o, f = (
            spec.obj(k) for k in ("sidecar", "traffic", "certificate", "observability", "featureFlags")
        )
        d_side, d_cert = SidecarSpec(), CertificateSpec()

        def enum(d: Doc, key: str, default: str, allowed: tuple[str, ...]) -> str:
            v = d.str(key, default)
            if v not in allowed:
                raise d.error(key, f"must be one of {', '.join(allowed)}, got {v!r}")
            return v

        def duration(d: Doc, key: str, default: float) -> float:
            if not d.has(key):
                return default
            text = d.str(key)
            try:
                value = parse_duration(text)
            except ValueError as e:
                raise d.error(key, str(e)) from None
            if value < 0:
                raise d.error(key, "must not be negative")
            return value

        def resources(d: Doc) -> str:
            raw = d.raw("resources")
            if raw is None:
                return ""
            if not isinstance(raw, Mapping):
                raise d.error("resources", "must be a ResourceRequirements (limits, requests)")
            return json.dumps(raw, sort_keys=True, separators=(",", ":"))

        def ingress_gateway(c: Doc) -> IngressGatewayCertSpec | None:
            if not c.has("ingressGateway"):
                return None
            g = c.obj("ingressGateway")
            sans = g.strs("subjectAltNames")
            if not sans:
                raise g.error("subjectAltNames", "is required: the names the gateway's certificate carries")
            for i, name in enumerate(sans):
                if not _DNS_NAME.fullmatch(name) or len(name) > 253:
                    raise g.error(f"subjectAltNames[{i}]", f"{name[:64]!r} is not a DNS name")
            validity = duration(g, "validityDuration", 24 * 3600.0)
            if validity <= 0:
                raise g.error("validityDuration", "must be positive")
            secret = g.obj("secret", required=True)
            return IngressGatewayCertSpec(
                subject_alt_names=tuple(sans),
                validity_duration=validity,
                secret_name=_name(secret, "name", subdomain=True),
                secret_namespace=_name(secret, "namespace"),
            )

        def tracing(o: Doc) -> Tracing | None:
            t = o.obj("tracing")
            if not t.bool("enable"):
                return None
            address = t.str("address") or f"jaeger.{meta.namespace}.svc.cluster.local"
            if not _is_host(address):
                raise t.error("address", f"{address[:64]!r} is neither a DNS name nor an IP address")
            endpoint = t.str("endpoint") or "/api/v2/spans"
            if not endpoint.startswith("/") or len(endpoint) > 256 or any(c.isspace() for c in endpoint):
                raise t.error("endpoint", f"{endpoint[:64]!r} is not a URL path (it starts with /)")
            sampling = t.raw("sampling")
            if sampling is None:
                sampling = 100.0
            if (
                isinstance(sampling, bool)
                or not isinstance(sampling, int | float)
                or not 0 <= sampling <= 100
            ):
                raise t.error("sampling", f"must be a percentage between 0 and 100, got {sampling!r}")
            return Tracing(address, t.int("port", 9411, lo=1, hi=65535), endpoint, float(sampling))

        def cidrs(d: Doc, key: str) -> tuple[str, ...]:
            out = []
            for i, v in enumerate(d.strs(key)):
                try:
                    out.append(str(ipaddress.ip_network(v, strict=False)))
                except ValueError:
                    raise d.error(f"{key}[{i}]", f"{v!r} is not a CIDR range") from None
            return tuple(out)

        def ports(d: Doc, key: str) -> tuple[int, ...]:
            out = []
            for i, v in enumerate(d.seq(key)):
                if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65535:
                    raise d.error(f"{key}[{i}]", f"must be a port number between 1 and 65535, got {v!r}")
                out.append(v)
            return tuple(out)

        resync = duration(s, "configResyncInterval", d_side.config_resync_interval)
        if 0 < resync < 30:
            raise s.error("configResyncInterval", "must be 0s (off) or at least 30s")
        validity = duration(c, "serviceCertValidityDuration", d_cert.service_cert_validity_duration)
        if validity < 1:
            raise c.error("serviceCertValidityDuration", "must be at least 1s")
        tls_min = enum(s, "tlsMinProtocolVersion", d_side.tls_min_protocol_version, TLS_VERSIONS)
        tls_max = enum(s, "tlsMaxProtocolVersion", d_side.tls_max_protocol_version, TLS_VERSIONS)
        order = {v: i for i, v in enumerate(TLS_VERSIONS)}
        if tls_max not in ("TLS_AUTO", "TLSv1_2", "TLSv1_3"):
            # Sidecars reach the control plane with these settings too, and it speaks TLS 1.2 and later:
            # upstream accepts the value and every sidecar loses its control plane.
            raise s.error(
                "tlsMaxProtocolVersion",
                f"{tls_max} would cut every sidecar off the control plane, which needs TLSv1_2 or later",
            )
        if "TLS_AUTO" not in (tls_min, tls_max) and order[tls_min] > order[tls_max]:
            raise s.error("tlsMinProtocolVersion", f"{tls_min} is above tlsMaxProtocolVersion {tls_max}")
        return MeshConfig(
            meta=meta,
            sidecar=SidecarSpec(
                enable_privileged_init_container=s.bool("enablePrivilegedInitContainer"),
                log_level=enum(s, "logLevel", d_side.log_level, LOG_LEVELS),
                max_data_plane_connections=s.int("maxDataPlaneConnections", 0, lo=0),
                config_resync_interval=resync,
                tls_min_protocol_version=tls_min,
                tls_max_protocol_version=tls_max,
                local_proxy_mode=enum(s, "localProxyMode", d_side.local_proxy_mode, LOCAL_PROXY_MODES),
                envoy_image=s.str("envoyImage"),
                init_container_image=s.str("initContainerImage"),
                resources_json=resources(s),
                enable_native_sidecar=s.bool("enableNativeSidecar"),
            ),
            traffic=TrafficSpec(
                enable_egress=t.bool("enableEgress"),
                enable_permissive_traffic_policy_mode=t.bool("enablePermissiveTrafficPolicyMode"),
                outbound_ip_range_exclusion_list=cidrs(t, "outboundIPRangeExclusionList"),
                outbound_ip_range_inclusion_list=cidrs(t, "outboundIPRangeInclusionList"),
                outbound_port_exclusion_list=ports(t, "outboundPortExclusionList"),
                inbound_port_exclusion_list=ports(t, "inboundPortExclusionList"),
                network_interface_exclusion_list=t.strs("networkInterfaceExclusionList"),
            ),
            certificate=CertificateSpec(
                service_cert_validity_duration=validity,
                cert_key_bit_size=c.int("certKeyBitSize", d_cert.cert_key_bit_size, lo=1024, hi=8192),
                ingress_gateway=ingress_gateway(c),
            ),
            observability=ObservabilitySpec(
                osm_log_level=enum(o, "osmLogLevel", "info", OSM_LOG_LEVELS),
                enable_debug_server=o.bool("enableDebugServer"),
                tracing=tracing(o),
            ),
            feature_flags=FeatureFlags(
                enable_wasm_stats=f.bool("enableWASMStats"),
                enable_egress_policy=f.bool("enableEgressPolicy"),
                enable_envoy_active_health_checks=f.bool("enableEnvoyActiveHealthChecks"),
                enable_retry_policy=f.bool("enableRetryPolicy"),
            ),
        )


# The fields of upstream's MeshConfig v1alpha2 spec, by section: None marks a free-form value (e.g. a
# Kubernetes ResourceRequirements) or a leaf, a dict a section whose own fields are checked.
Fields = Mapping[str, "Fields | None"]
SPEC_FIELDS: Fields = {
    "sidecar": {
        "enablePrivilegedInitContainer": None,
        "logLevel": None,
        "envoyImage": None,
        "envoyWindowsImage": None,
        "initContainerImage": None,
        "maxDataPlaneConnections": None,
        "configResyncInterval": None,
        "resources": None,
        "tlsMinProtocolVersion": None,
        "tlsMaxProtocolVersion": None,
        "cipherSuites": None,
        "ecdhCurves": None,
        "localProxyMode": None,
        "enableNativeSidecar": None,  # ours, not upstream's
    },
    "traffic": {
        "enableEgress": None,
        "enablePermissiveTrafficPolicyMode": None,
        "outboundIPRangeExclusionList": None,
        "outboundIPRangeInclusionList": None,
        "outboundPortExclusionList": None,
        "inboundPortExclusionList": None,
        "networkInterfaceExclusionList": None,
        "inboundExternalAuthorization": {
            "enable": None,
            "address": None,
            "port": None,
            "statPrefix": None,
            "timeout": None,
            "failureModeAllow": None,
        },
    },
    "observability": {
        "osmLogLevel": None,
        "enableDebugServer": None,
        "tracing": {
            "enable": None,
            "address": None,
            "port": None,
            "endpoint": None,
            "sampling": None,  # ours, not upstream's: percent of requests traced
        },
    },
    "certificate": {
        "serviceCertValidityDuration": None,
        "certKeyBitSize": None,
        "ingressGateway": {
            "subjectAltNames": None,
            "validityDuration": None,
            "secret": {"name": None, "namespace": None},
        },
    },
    "featureFlags": {
        "enableWASMStats": None,
        "enableEgressPolicy": None,
        "enableMulticlusterMode": None,  # deprecated upstream, still in its CRD
        "enableSnapshotCacheMode": None,
        "enableAsyncProxyServiceMapping": None,
        "enableIngressBackendPolicy": None,
        "enableEnvoyActiveHealthChecks": None,
        "enableRetryPolicy": None,
    },
}


_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


# upstream's osmLogLevel values, and the Python logging level each means
OSM_LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "fatal", "panic", "disabled")
PYTHON_LOG_LEVELS = {
    "trace": 10,
    "debug": 10,
    "info": 20,
    "warn": 30,
    "error": 40,
    "fatal": 50,
    "panic": 50,
    "disabled": 60,
}


def _is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return len(value) <= 253 and _DNS_NAME.fullmatch(value) is not None


def _name(d: Doc, key: str, *, subdomain: bool = False) -> str:
    value = d.str(key, required=True)
    if subdomain:
        if len(value) > 253 or not _DNS_NAME.fullmatch(value):
            raise d.error(key, f"{value[:64]!r} must be a lowercase RFC 1123 subdomain (a-z, 0-9, '-', '.')")
    elif len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise d.error(key, f"{value[:64]!r} must be a lowercase RFC 1123 label (a-z, 0-9, '-')")
    return value


def _check_fields(d: Doc, known: Fields) -> None:
    """Reject a field `known` does not list (a misspelt one would otherwise be silently ignored)."""
    for key in d.fields():
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known fields: {', '.join(known)}"
            raise d.error(str(key), f"unknown field{hint}")
        inner = known[key]
        if inner is not None and d.has(key):
            _check_fields(d.obj(key), inner)
