"""What the local runtime should run (pure): pods from bare Pods, Deployments and StatefulSets, their sidecar
decision, and the service plan (ClusterIPs, DNS entries, NAT to ready endpoints)."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from osm.injector.decision import InjectionError, must_inject
from osm.local.netplan import NODE_IP, ServiceEntry, ServicePortNAT
from osm.models.k8s import (
    LABEL_PROXY_UUID,
    Container,
    Deployment,
    ObjectMeta,
    Pod,
    PodSpec,
    PodTemplate,
    StatefulSet,
    match_labels,
)
from osm.state.snapshot import MeshState

OWNER_ANNOTATION = "local.openservicemesh.io/owner"
CONTROLLER_SERVICE = "osm-controller"
TEMPLATE_HASH_LABEL = "pod-template-hash"
REVISION_LABEL = "controller-revision-hash"  # a StatefulSet pod's template revision
STS_POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
STS_POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' safe characters for generated names


def template_hash(d: Deployment | StatefulSet) -> str:
    data = json.dumps(
        {
            "labels": dict(d.template.labels),
            "annotations": dict(d.template.annotations),
            "spec": repr(d.template.spec),
        },
        sort_keys=True,
    )
    n = int.from_bytes(hashlib.sha256(data.encode()).digest()[:8], "big")
    out = ""
    for _ in range(10):
        n, r = divmod(n, len(_ALPHABET))
        out += _ALPHABET[r]
    return out


def generated_name(deployment: str, thash: str) -> str:
    return f"{deployment}-{thash}-{''.join(secrets.choice(_ALPHABET) for _ in range(5))}"


def _pod_from_template(
    t: PodTemplate, meta: ObjectMeta, name: str, owner_ref: str, labels: dict[str, str], spec: PodSpec
) -> Pod:
    labels = {
        **t.labels,
        **labels,
        LABEL_PROXY_UUID: str(uuid.uuid4()),  # a new pod, a new proxy (as the injector does)
    }
    annotations = {**t.annotations, OWNER_ANNOTATION: owner_ref}
    return Pod(
        meta=ObjectMeta(name=name, namespace=meta.namespace, labels=labels, annotations=annotations),
        spec=spec,
        pod_ip="",
        ready=False,
    )


def pod_for_deployment(d: Deployment, name: str, thash: str) -> Pod:
    return _pod_from_template(
        d.template, d.meta, name, f"Deployment/{d.meta.name}", {TEMPLATE_HASH_LABEL: thash}, d.template.spec
    )


def pod_for_statefulset(s: StatefulSet, ordinal: int, thash: str) -> Pod:
    """A StatefulSet's pod `<name>-<ordinal>`: its hostname is its name, its subdomain the governing
    Service, so `<name>-<ordinal>.<serviceName>` resolves to it (as the StatefulSet controller sets)."""
    name = f"{s.meta.name}-{ordinal}"
    labels = {
        REVISION_LABEL: f"{s.meta.name}-{thash}",
        STS_POD_NAME_LABEL: name,
        STS_POD_INDEX_LABEL: str(ordinal),
    }
    spec = replace(s.template.spec, hostname=name, subdomain=s.service_name)
    return _pod_from_template(s.template, s.meta, name, f"StatefulSet/{s.meta.name}", labels, spec)


def secret_dir(state_dir: Path, namespace: str, name: str) -> Path:
    """Where local mode keeps a Secret the mesh issues (the ingress gateway's: tls.crt, tls.key, ca.crt),
    for the pods that use it to read."""
    return state_dir / "secrets" / namespace / name


def owner(pod: Pod) -> str:
    return pod.meta.annotations.get(OWNER_ANNOTATION, "")


@dataclass(frozen=True, slots=True)
class Placement:
    """A pod the runtime should run, and whether it gets a sidecar."""

    pod: Pod
    meshed: bool
    error: str = ""


def placement(state: MeshState, pod: Pod) -> Placement:
    try:
        meshed = must_inject(
            state.namespaces.get(pod.meta.namespace),
            pod.meta.annotations,
            host_network=pod.spec.host_network,
            mesh_name=state.mesh_name,
            osm_namespace=state.osm_namespace,
        )
    except InjectionError as e:
        return Placement(pod, False, f"Pod {pod.meta.namespace}/{pod.meta.name}: {e}")
    return Placement(pod, meshed)


def spec_fingerprint(meta: ObjectMeta, spec: PodSpec) -> str:
    """Changes to these restart a pod: its spec, labels and annotations (minus runtime-owned ones)."""
    labels = {k: v for k, v in meta.labels.items() if k != LABEL_PROXY_UUID}
    return hashlib.sha256(
        repr((sorted(labels.items()), sorted(meta.annotations.items()), spec)).encode()
    ).hexdigest()


def env_values(c: Container, pod: Pod, pod_ip: str, node_ip: str) -> tuple[dict[str, str], list[str]]:
    """A container's own env with `valueFrom.fieldRef` filled in from the pod, as the kubelet does; and
    the variables the local runtime cannot fill (Secret, ConfigMap and resource sources), said."""
    fields = {
        "metadata.name": pod.meta.name,
        "metadata.namespace": pod.meta.namespace,
        "metadata.uid": pod.meta.uid,
        "spec.nodeName": "local",
        "spec.serviceAccountName": pod.service_account,
        "status.hostIP": node_ip,
        "status.hostIPs": node_ip,
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
    }
    out: dict[str, str] = {}
    unset: list[str] = []
    for e in c.env:
        if e.source:
            unset.append(f"{e.name} (valueFrom.{e.source})")
            continue
        if not e.field_path:
            out[e.name] = e.value
            continue
        keyed = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", e.field_path)
        if keyed is not None:
            source = pod.meta.labels if keyed.group(1) == "labels" else pod.meta.annotations
            out[e.name] = source.get(keyed.group(2), "")
        else:
            out[e.name] = fields.get(e.field_path, "")
    return out, unset


def service_entries(state: MeshState) -> list[ServiceEntry]:
    """The names a pod resolves (as cluster DNS would): osm-controller.<osm namespace> (the node, where the
    control plane runs); a Service's ClusterIP; a headless Service's
    ready pods, every one of them; and `<hostname>.<subdomain>` for a pod naming a headless Service as
    its subdomain (a StatefulSet's pods)."""
    out = [
        ServiceEntry(ns, name, svc.cluster_ip)
        for (ns, name), svc in sorted(state.services.items())
        if svc.cluster_ip and not svc.headless
    ]
    # the control plane runs on the node: its Service's name is the node's address
    out.append(ServiceEntry(state.osm_namespace, CONTROLLER_SERVICE, NODE_IP))
    headless = {key: svc for key, svc in state.services.items() if svc.headless}
    for (ns, name), pod in sorted(state.pods.items()):
        if not (pod.ready and pod.pod_ip):
            continue
        for (sns, sname), svc in sorted(headless.items()):
            if sns == ns and svc.selector and match_labels(svc.selector, pod.meta.labels):
                out.append(ServiceEntry(ns, sname, pod.pod_ip))
        subdomain = pod.spec.subdomain
        if subdomain and (ns, subdomain) in headless:
            out.append(ServiceEntry(ns, f"{pod.spec.hostname or name}.{subdomain}", pod.pod_ip))
    return out


def service_nat(state: MeshState) -> list[ServicePortNAT]:
    """ClusterIP:port -> ready endpoints, for every Service (monitored or not), as kube-proxy would."""
    out: list[ServicePortNAT] = []
    for (ns, _), svc in sorted(state.services.items()):
        if not svc.cluster_ip or svc.headless:
            continue
        pods = [
            p
            for (pns, _), p in sorted(state.pods.items())
            if pns == ns and p.ready and p.pod_ip and match_labels(svc.selector, p.meta.labels)
        ]
        for port in svc.ports:
            if port.protocol != "TCP":
                continue
            eps = []
            for p in pods:
                target = (
                    port.target_port
                    if isinstance(port.target_port, int)
                    else p.spec.container_port(port.target_port)
                )
                if target is not None:
                    eps.append((p.pod_ip, target))
            out.append(ServicePortNAT(svc.cluster_ip, port.port, tuple(eps)))
    return out


def nat_of(state: MeshState) -> Callable[[str, int], list[tuple[str, int]]]:
    """service_nat as a lookup: ClusterIP:port to the ready pods behind it (anything else as it is)."""
    table = {(n.cluster_ip, n.port): list(n.endpoints) for n in service_nat(state)}
    return lambda ip, port: table.get((ip, port), [(ip, port)])


def with_status(pod: Pod, ip: str, ready: bool) -> Pod:
    return replace(pod, pod_ip=ip, ready=ready)
