"""Write a pod's sidecar bootstrap (what the injector would put in its Secret) into a directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from osm.certificate.tresor import TresorCA
from osm.envoy.bootstrap.bootstrap import (
    FILE_BOOTSTRAP,
    FILE_KEY,
    BootstrapParams,
    ProbeRoute,
    bootstrap_files,
)
from osm.models.identity import PROXY_KIND_SIDECAR, ProxyCertCN, ServiceIdentity
from osm.models.k8s import Pod
from osm.state.decode import ObjectKey
from osm.state.store import Store

from .source import ManifestSource
from .uuids import FILE_NAME as UUIDS_FILE
from .uuids import ProxyUuids

XDS_CERT_VALIDITY = timedelta(days=3650)


class BootstrapError(Exception):
    pass


@dataclass(frozen=True)
class WrittenBootstrap:
    path: Path  # bootstrap.yaml
    node_id: str
    pod: Pod


def find_pod(local_dir: Path, namespace: str, name: str, state_dir: Path) -> Pod:
    """The pod as the controller on `local_dir` and `state_dir` knows it: with the proxy UUID the
    manifest gives it, or that the controller assigned when it first saw the pod."""
    store = Store()
    uuids = ProxyUuids(state_dir / UUIDS_FILE, readonly=True)
    ManifestSource(local_dir, store, on_error=lambda e: None, uuids=uuids).load()
    obj = store.get(ObjectKey("Pod", namespace, name))
    if not isinstance(obj, Pod):
        raise BootstrapError(f"no Pod {namespace}/{name} in {local_dir}")
    if not obj.proxy_uuid:
        raise BootstrapError(
            f"the control plane on {state_dir} has not seen Pod {namespace}/{name} yet (it has no proxy "
            "UUID): start the controller first"
        )
    return obj


def write_bootstrap(
    pod: Pod,
    *,
    state_dir: Path,
    out: Path,
    ads_host: str,
    ads_port: int,
    admin_port: int = 15000,
    xds: str = "sotw",
    trust_domain: str = "cluster.local",
    probes: tuple[ProbeRoute, ...] = (),
) -> WrittenBootstrap:
    now = datetime.now(UTC)
    ca = TresorCA.load_or_create(state_dir, now=now)
    cn = ProxyCertCN(
        pod.proxy_uuid,
        PROXY_KIND_SIDECAR,
        ServiceIdentity(pod.meta.namespace, pod.service_account),
        trust_domain,
    )
    cert = ca.issue(str(cn), XDS_CERT_VALIDITY, now=now)
    params = BootstrapParams(
        node_id=str(cn),
        service_cluster=str(cn.identity),
        ads_host=ads_host,
        ads_port=ads_port,
        config_dir=str(out.resolve()),
        admin_port=admin_port,
        xds=xds,
        probes=probes,
    )
    out.mkdir(parents=True, exist_ok=True)
    for name, content in bootstrap_files(params, cert.cert_pem, cert.key_pem, ca.trust_bundle_pem).items():
        path = out / name
        tmp = out / f".{name}.tmp"
        tmp.write_bytes(content)
        os.chmod(tmp, 0o600 if name == FILE_KEY else 0o644)
        os.replace(tmp, path)
    return WrittenBootstrap(out / FILE_BOOTSTRAP, str(cn), pod)
