"""Write a pod's sidecar bootstrap (what the injector would put in its Secret) into a directory."""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from osm.certificate.manager import XDS_CERT_VALIDITY
from osm.certificate.tresor import TresorCA
from osm.envoy.bootstrap.bootstrap import (
    FILE_BOOTSTRAP,
    FILE_CERT,
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

# The sidecar's xDS client certificate: short-lived, renewed by the runtime (see renew_certificate).


class BootstrapError(Exception):
    pass


@dataclass(frozen=True)
class WrittenBootstrap:
    path: Path  # bootstrap.yaml
    node_id: str
    pod: Pod
    expires: datetime  # when the xDS client certificate expires


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
    validity: timedelta = XDS_CERT_VALIDITY,
    uid: int | None = None,
    metrics_port: int | None = None,
    wait_for_config: bool = False,
    tls_versions: tuple[str, str] = ("TLSv1_2", "TLSv1_3"),
) -> WrittenBootstrap:
    """Write the pod's bootstrap files into `out` (created if missing, never through a symlink), owned by
    `uid` when given (the sidecar's user)."""
    now = datetime.now(UTC)
    ca = TresorCA.load_or_create(state_dir, now=now)
    cn = proxy_cert_cn(pod, trust_domain)
    cert = ca.issue(str(cn), validity, now=now)
    params = BootstrapParams(
        node_id=str(cn),
        service_cluster=str(cn.identity),
        ads_host=ads_host,
        ads_port=ads_port,
        config_dir=str(out.resolve()),
        admin_port=admin_port,
        xds=xds,
        control_plane_san=f"ads.{trust_domain}",
        probes=probes,
        metrics_port=metrics_port,
        wait_for_config=wait_for_config,
        tls_min_version=tls_versions[0],
        tls_max_version=tls_versions[1],
    )
    _safe_dir(out)
    for name, content in bootstrap_files(params, cert.cert_pem, cert.key_pem, ca.trust_bundle_pem).items():
        _replace_file(out, name, content, uid)
    return WrittenBootstrap(out / FILE_BOOTSTRAP, str(cn), pod, cert.not_after)


def renew_certificate(
    out: Path,
    pod: Pod,
    *,
    state_dir: Path,
    trust_domain: str = "cluster.local",
    validity: timedelta = XDS_CERT_VALIDITY,
    uid: int | None = None,
) -> datetime:
    """Issue the sidecar a new xDS client certificate in its bootstrap directory; when it expires.

    The key is replaced before the certificate: Envoy watches the directory and reloads the pair once
    both are consistent (it checks that neither changed between its reads of the two)."""
    now = datetime.now(UTC)
    ca = TresorCA.load_or_create(state_dir, now=now)
    cert = ca.issue(str(proxy_cert_cn(pod, trust_domain)), validity, now=now)
    _safe_dir(out)
    _replace_file(out, FILE_KEY, cert.key_pem, uid)
    _replace_file(out, FILE_CERT, cert.cert_pem, uid)
    return cert.not_after


def proxy_cert_cn(pod: Pod, trust_domain: str) -> ProxyCertCN:
    return ProxyCertCN(
        pod.proxy_uuid,
        PROXY_KIND_SIDECAR,
        ServiceIdentity(pod.meta.namespace, pod.service_account),
        trust_domain,
    )


def _safe_dir(out: Path) -> None:
    """`out` as a real directory: created if missing, refused if it is a symlink (or not a directory)."""
    if out.is_symlink():
        raise BootstrapError(f"{out} is a symlink; the bootstrap is not written through it")
    out.mkdir(parents=True, exist_ok=True)
    if not out.is_dir():
        raise BootstrapError(f"{out} is not a directory")


def _replace_file(out: Path, name: str, content: bytes, uid: int | None = None) -> None:
    """Write `out/name` atomically through a new temporary file (O_EXCL: never a planted one), then
    rename it over the old one (a symlink there is replaced, not followed)."""
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.")
    try:
        os.fchmod(fd, 0o600 if name == FILE_KEY else 0o644)
        if uid is not None:
            os.fchown(fd, uid, uid)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.replace(tmp, out / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
