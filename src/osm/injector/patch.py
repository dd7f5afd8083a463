"""The sidecar injection patch (pure): what the mutating webhook adds to a pod, and its bootstrap Secret.

Upstream's patch (contract section 5.3), with one opt-in for its pain point 5: Envoy as a native
sidecar (an init container with `restartPolicy: Always`, Kubernetes 1.29+) right after the iptables
init container. The kubelet then starts it before the app's containers, so the app's first
connections already have a proxy, and stops it after them, so a Job completes. Chosen by MeshConfig
`spec.sidecar.enableNativeSidecar` and, over it, the pod annotation `openservicemesh.io/native-sidecar`
(enabled|disabled); otherwise upstream's layout (Envoy appended to the containers).
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from osm.apis.meshconfig import MeshConfig
from osm.envoy.bootstrap.bootstrap import DRAIN_ARGS, PROBE_PORTS, BootstrapParams, bootstrap_files
from osm.envoy.common import PORT_ADMIN, PORT_ADS, PORT_INBOUND, PORT_METRICS
from osm.injector.iptables import init_container_command, iptables_config_for_pod
from osm.injector.probes import rewrite_probes
from osm.models.fields import Doc
from osm.models.identity import PROXY_KIND_SIDECAR, ProxyCertCN, ServiceIdentity
from osm.models.k8s import (
    ANNOTATION_METRICS,
    ANNOTATION_NATIVE_SIDECAR,
    HEALTHCHECK_PORT,
    LABEL_PROXY_UUID,
    Container,
    Namespace,
    Probe,
)

ENVOY_CONTAINER = "envoy"
INIT_CONTAINER = "osm-init"
BOOTSTRAP_VOLUME = "envoy-bootstrap-config-volume"
BOOTSTRAP_DIR = "/etc/envoy"
ENVOY_UID = 1500
NATIVE_STARTUP_SECONDS = 120  # a native sidecar's first config must arrive within this, else it restarts
DEFAULT_ENVOY_IMAGE = "envoyproxy/envoy-distroless:v1.40.0"
DEFAULT_INIT_IMAGE = "openservicemesh/init:v1.2.4"
DEFAULT_HEALTHCHECK_IMAGE = "openservicemesh/osm-python:latest"  # any image with the osm-healthcheck command
HEALTHCHECK_CONTAINER = "osm-healthcheck"
HEALTHCHECK_UID = 65532  # not Envoy's 1500: its connections to localhost must reach the app directly
TRUE_VALUES = frozenset({"enabled", "yes", "true"})
FALSE_VALUES = frozenset({"disabled", "no", "false"})


def bootstrap_secret_name(proxy_uuid: str) -> str:
    return f"envoy-bootstrap-config-{proxy_uuid}"


@dataclass(frozen=True, slots=True)
class InjectorConfig:
    mesh_name: str = "osm"
    osm_namespace: str = "osm-system"
    trust_domain: str = "cluster.local"
    ads_host: str = ""  # "" : osm-controller.<osm namespace>.svc.cluster.local
    ads_port: int = PORT_ADS
    xds: str = "sotw"
    envoy_image: str = DEFAULT_ENVOY_IMAGE  # when the MeshConfig names none
    init_image: str = DEFAULT_INIT_IMAGE
    healthcheck_image: str = DEFAULT_HEALTHCHECK_IMAGE
    version: str = ""

    @property
    def controller_host(self) -> str:
        return self.ads_host or f"osm-controller.{self.osm_namespace}.svc.cluster.local"


@dataclass(frozen=True, slots=True)
class Injection:
    patch: list[dict[str, Any]]  # RFC 6902 operations on the pod
    secret: dict[str, Any]  # the bootstrap Secret, to create in the pod's namespace
    cert_cn: str


def proxy_cn(proxy_uuid: str, namespace: str, service_account: str, trust_domain: str) -> ProxyCertCN:
    return ProxyCertCN(
        proxy_uuid, PROXY_KIND_SIDECAR, ServiceIdentity(namespace, service_account), trust_domain
    )


def metrics_annotation(namespace_annotations: Mapping[str, str]) -> bool:
    """Whether a namespace's openservicemesh.io/metrics annotation has its sidecars scraped by Prometheus
    (`osm metrics enable`)."""
    return namespace_annotations.get(ANNOTATION_METRICS, "").strip().lower() in TRUE_VALUES


def metrics_enabled(namespace: Namespace | None) -> bool:
    return namespace is not None and metrics_annotation(namespace.meta.annotations)


def native_sidecar(mesh: MeshConfig, annotations: Mapping[str, str]) -> bool:
    """Whether Envoy goes in as a native sidecar: the pod's annotation, else the MeshConfig."""
    value = annotations.get(ANNOTATION_NATIVE_SIDECAR)
    if value is None:
        return mesh.sidecar.enable_native_sidecar
    v = value.strip().lower()
    if v not in TRUE_VALUES | FALSE_VALUES:
        raise ValueError(
            f"annotation {ANNOTATION_NATIVE_SIDECAR}={value!r}: must be enabled|yes|true or disabled|no|false"
        )
    return v in TRUE_VALUES


def _probe_json(raw: Mapping[str, Any], probe: Probe) -> dict[str, Any]:
    """`raw` (the container's probe as written) with the port, path, scheme and headers of `probe` (a TCP
    probe becomes an HTTP probe of the osm-healthcheck container)."""
    out = copy.deepcopy(dict(raw))
    if probe.kind == "httpGet":
        was_tcp = out.pop("tcpSocket", None) is not None
        http = dict(out.get("httpGet") or {})
        http.update({"port": probe.port, "path": probe.path, **({} if was_tcp else {"scheme": probe.scheme})})
        if probe.headers:
            http["httpHeaders"] = [{"name": k, "value": v} for k, v in probe.headers]
        out["httpGet"] = http
    return out


def _healthcheck_container(cfg: InjectorConfig, mesh: MeshConfig, native: bool) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": HEALTHCHECK_CONTAINER,
        "image": cfg.healthcheck_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["osm-healthcheck"],
        "args": ["--verbosity", _osm_level(mesh.sidecar.log_level)],
        "ports": [{"name": HEALTHCHECK_CONTAINER, "containerPort": HEALTHCHECK_PORT}],
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": HEALTHCHECK_UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
    }
    if native:
        c["restartPolicy"] = "Always"
    return c


def _osm_level(envoy_level: str) -> str:
    """The osm-healthcheck log level nearest to the sidecar's Envoy log level."""
    return {"trace": "debug", "debug": "debug", "warn": "warning", "warning": "warning"}.get(
        envoy_level, "error" if envoy_level in ("error", "critical", "off") else "info"
    )


def _env_from(name: str, field_path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def _envoy_container(
    mesh: MeshConfig, cfg: InjectorConfig, service_cluster: str, probe_kinds: list[str], native: bool
) -> dict[str, Any]:
    ports = [
        {"name": "proxy-admin", "containerPort": PORT_ADMIN},
        {"name": "proxy-inbound", "containerPort": PORT_INBOUND},
        {"name": "proxy-metrics", "containerPort": PORT_METRICS},
    ]
    ports += [{"name": f"{kind}-port", "containerPort": PROBE_PORTS[kind]} for kind in probe_kinds]
    c: dict[str, Any] = {
        "name": ENVOY_CONTAINER,
        "image": mesh.sidecar.envoy_image or cfg.envoy_image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {"runAsUser": ENVOY_UID, "allowPrivilegeEscalation": False},
        "ports": ports,
        "volumeMounts": [{"name": BOOTSTRAP_VOLUME, "mountPath": BOOTSTRAP_DIR, "readOnly": True}],
        "command": ["envoy"],
        "args": [
            "--log-level",
            mesh.sidecar.log_level,
            "--config-path",
            f"{BOOTSTRAP_DIR}/bootstrap.yaml",
            *DRAIN_ARGS,
            "--service-cluster",
            service_cluster,
        ],
        "env": [
            _env_from("POD_UID", "metadata.uid"),
            _env_from("POD_NAME", "metadata.name"),
            _env_from("POD_NAMESPACE", "metadata.namespace"),
            _env_from("POD_IP", "status.podIP"),
            _env_from("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        ],
    }
    if mesh.sidecar.resources_json:
        c["resources"] = json.loads(mesh.sidecar.resources_json)
    if native:
        c["restartPolicy"] = "Always"
        # The kubelet starts the app's containers once this passes: Envoy has its first config.
        c["startupProbe"] = {
            "httpGet": {"path": "/ready", "port": PORT_METRICS},
            "periodSeconds": 1,
            "timeoutSeconds": 1,
            "failureThreshold": NATIVE_STARTUP_SECONDS,
        }
    return c


def _init_container(mesh: MeshConfig, cfg: InjectorConfig, annotations: Mapping[str, str]) -> dict[str, Any]:
    rules = iptables_config_for_pod(mesh, annotations)
    return {
        "name": INIT_CONTAINER,
        "image": mesh.sidecar.init_container_image or cfg.init_image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "privileged": mesh.sidecar.enable_privileged_init_container,
            "capabilities": {"add": ["NET_ADMIN"]},
            "runAsNonRoot": False,
            "runAsUser": 0,
        },
        "command": init_container_command(rules)[:2],
        "args": init_container_command(rules)[2:],
        "env": [_env_from("POD_IP", "status.podIP")],
    }


RESERVED_PORTS = frozenset(
    {PORT_ADMIN, 15001, PORT_INBOUND, PORT_METRICS, *PROBE_PORTS.values(), HEALTHCHECK_PORT}
)


def _check_reserved(spec: Mapping[str, Any], sidecars: list[dict[str, Any]]) -> None:
    """The sidecars' container, volume, port names and ports must not clash with the pod's own."""
    names = {ENVOY_CONTAINER, INIT_CONTAINER, HEALTHCHECK_CONTAINER}
    port_names = {str(p["name"]) for c in sidecars for p in c["ports"]}
    for field in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(field) or []):
            if not isinstance(c, Mapping):
                continue
            where = f"spec.{field}[{i}]"
            if c.get("name") in names:
                raise ValueError(f"{where}.name: {c.get('name')!r} is the sidecar's container name")
            for j, p in enumerate(c.get("ports") or []):
                if not isinstance(p, Mapping):
                    continue
                if p.get("containerPort") in RESERVED_PORTS:
                    reserved = ", ".join(str(n) for n in sorted(RESERVED_PORTS))
                    raise ValueError(
                        f"{where}.ports[{j}].containerPort: {p.get('containerPort')} is reserved for the "
                        f"sidecar ({reserved})"
                    )
                if p.get("name") in port_names:
                    raise ValueError(f"{where}.ports[{j}].name: {p.get('name')!r} is the sidecar's port name")
    for i, v in enumerate(spec.get("volumes") or []):
        if isinstance(v, Mapping) and v.get("name") == BOOTSTRAP_VOLUME:
            raise ValueError(f"spec.volumes[{i}].name: {BOOTSTRAP_VOLUME!r} is the sidecar's volume name")


def inject(
    pod: Mapping[str, Any],
    namespace: str,
    mesh: MeshConfig,
    cfg: InjectorConfig,
    *,
    namespace_annotations: Mapping[str, str],
    proxy_uuid: str,
    cert_pem: bytes,
    key_pem: bytes,
    ca_pem: bytes,
) -> Injection:
    """The patch for `pod` (being created in `namespace`) and its bootstrap Secret. The caller issued
    the xDS certificate for `proxy_cn(proxy_uuid, namespace, <the pod's service account>, ...)`.

    Raises ValidationError (a container or probe of the pod is invalid) or ValueError (an exclusion
    annotation is invalid), naming the field."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    name = str(meta.get("name") or meta.get("generateName") or "")
    sa = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    raw_containers = [dict(c) for c in spec.get("containers") or []]
    doc = Doc(spec, "Pod", namespace, name, "spec")
    containers = tuple(Container.parse(c) for c in doc.objs("containers"))
    rewritten = rewrite_probes(containers)
    for raw, c in zip(raw_containers, containers, strict=True):
        for kind in ("liveness", "readiness", "startup"):
            probe = rewritten.probes.get((c.name, kind))
            if probe is not None and f"{kind}Probe" in raw:
                raw[f"{kind}Probe"] = _probe_json(raw[f"{kind}Probe"], probe)

    metrics = metrics_annotation(namespace_annotations)
    native = native_sidecar(mesh, annotations)
    cn = proxy_cn(proxy_uuid, namespace, sa, cfg.trust_domain)
    params = BootstrapParams(
        node_id=str(cn),
        service_cluster=str(cn.identity),
        ads_host=cfg.controller_host,
        ads_port=cfg.ads_port,
        config_dir=BOOTSTRAP_DIR,
        xds=cfg.xds,
        control_plane_san=f"ads.{cfg.trust_domain}",
        tls_min_version=mesh.sidecar.tls_min_protocol_version,
        tls_max_version=mesh.sidecar.tls_max_protocol_version,
        probes=rewritten.routes,
        metrics_port=PORT_METRICS,
        wait_for_config=native,
    )
    files = bootstrap_files(params, cert_pem, key_pem, ca_pem)
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": bootstrap_secret_name(proxy_uuid),
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": "openservicemesh.io",
                "app.kubernetes.io/instance": cfg.mesh_name,
                "app.kubernetes.io/version": cfg.version,
                LABEL_PROXY_UUID: proxy_uuid,
            },
        },
        "type": "Opaque",
        "data": {k: base64.b64encode(v).decode() for k, v in files.items()},
    }

    envoy = _envoy_container(mesh, cfg, str(cn.identity), [r.kind for r in rewritten.routes], native)
    sidecars = [envoy] + ([_healthcheck_container(cfg, mesh, native)] if rewritten.healthcheck else [])
    _check_reserved(spec, sidecars)
    init = _init_container(mesh, cfg, annotations)
    init_containers = [dict(c) for c in spec.get("initContainers") or []]
    init_containers = [init, *sidecars, *init_containers] if native else [*init_containers, init]
    if not native:
        raw_containers.extend(sidecars)
    volumes = [
        *(spec.get("volumes") or []),
        {"name": BOOTSTRAP_VOLUME, "secret": {"secretName": bootstrap_secret_name(proxy_uuid)}},
    ]
    labels = {**(meta.get("labels") or {}), LABEL_PROXY_UUID: proxy_uuid}

    ops: list[dict[str, Any]] = [
        {"op": "add", "path": "/metadata/labels", "value": labels},
        {"op": "add", "path": "/spec/initContainers", "value": init_containers},
        {"op": "add", "path": "/spec/containers", "value": raw_containers},
        {"op": "add", "path": "/spec/volumes", "value": volumes},
    ]
    if metrics:
        scrape = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(PORT_METRICS),
            "prometheus.io/path": "/stats/prometheus",
        }
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {**annotations, **scrape}})
    return Injection(ops, secret, str(cn))
