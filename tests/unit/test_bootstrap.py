"""The sidecar bootstrap: contents, the files it names, `osm local bootstrap`, and Envoy's own validation."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from osm.cli.main import cli
from osm.envoy.bootstrap.bootstrap import BootstrapParams, ProbeRoute, bootstrap_config, bootstrap_files
from osm.local.bootstrap import BootstrapError, find_pod, renew_certificate, write_bootstrap
from osm.local.source import ManifestSource
from osm.local.uuids import ProxyUuids
from osm.state.store import Store
from osm.testing.envoy import envoy_binary

EXAMPLE = Path(__file__).parents[2] / "examples" / "bookstore"


def test_bootstrap_points_envoy_at_the_controller_over_ads() -> None:
    cfg = bootstrap_config(
        BootstrapParams(
            node_id="u.sidecar.sa.ns.cluster.local",
            service_cluster="sa.ns",
            ads_host="osm-controller.osm-system.svc.cluster.local",
            xds="delta",
        )
    )
    assert cfg["node"] == {"id": "u.sidecar.sa.ns.cluster.local", "cluster": "sa.ns"}
    assert cfg["admin"]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 15000}
    ads = cfg["dynamic_resources"]["ads_config"]
    assert (
        ads["api_type"] == "DELTA_GRPC"
        and ads["grpc_services"][0]["envoy_grpc"]["cluster_name"] == "osm-controller"
    )
    (cluster,) = cfg["static_resources"]["clusters"]
    assert cluster["type"] == "LOGICAL_DNS"  # a host name; an IP gives STATIC
    tls = cluster["transport_socket"]["typed_config"]["common_tls_context"]
    assert tls["alpn_protocols"] == ["h2"]
    assert tls["tls_certificate_sds_secret_configs"][0]["sds_config"]["path_config_source"]["path"] == (
        "/etc/envoy/tls_certificate_sds_secret.yaml"
    )
    assert "http2_protocol_options" in str(cluster["typed_extension_protocol_options"])


def test_probe_routes_become_static_listeners() -> None:
    cfg = bootstrap_config(
        BootstrapParams(
            node_id="n",
            service_cluster="c",
            ads_host="10.0.0.1",
            probes=(
                ProbeRoute("liveness", 8080, "/healthz"),
                ProbeRoute("readiness", 8443, "/ready", https=True),
            ),
        )
    )
    listeners = {x["name"]: x for x in cfg["static_resources"]["listeners"]}
    assert listeners["liveness_listener"]["address"]["socket_address"]["port_value"] == 15901
    route = listeners["liveness_listener"]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]
    assert route["virtual_hosts"][0]["routes"][0]["match"] == {"prefix": "/osm-liveness-probe"}
    assert route["virtual_hosts"][0]["routes"][0]["route"]["prefix_rewrite"] == "/healthz"
    assert "tcp_proxy" in listeners["readiness_listener"]["filter_chains"][0]["filters"][0]["name"]
    assert {c["name"] for c in cfg["static_resources"]["clusters"]} == {
        "osm-controller",
        "liveness_cluster",
        "readiness_cluster",
    }


def test_invalid_xds_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="sotw or delta"):
        bootstrap_config(BootstrapParams(node_id="n", service_cluster="c", ads_host="h", xds="rest"))


@pytest.mark.envoy
def test_envoy_validates_the_written_bootstrap(tmp_path: Path) -> None:
    params = BootstrapParams(
        node_id="n.sidecar.sa.ns.cluster.local",
        service_cluster="sa.ns",
        ads_host="127.0.0.1",
        config_dir=str(tmp_path),
        probes=(ProbeRoute("startup", 8080, "/start"),),
    )
    from datetime import UTC, datetime, timedelta

    from osm.certificate.tresor import TresorCA

    ca = TresorCA.create(now=datetime.now(UTC))
    cert = ca.issue(params.node_id, timedelta(hours=1), now=datetime.now(UTC))
    for name, content in bootstrap_files(params, cert.cert_pem, cert.key_pem, ca.trust_bundle_pem).items():
        (tmp_path / name).write_bytes(content)
    cp = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(tmp_path / "bootstrap.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cp.returncode == 0, cp.stdout + cp.stderr


def test_osm_local_bootstrap_refuses_a_pod_the_controller_has_not_seen(tmp_path: Path) -> None:
    args = ["local", "bootstrap", "--local", str(EXAMPLE), "--state-dir", str(tmp_path / "state")]
    args += ["--pod", "bookbuyer/bookbuyer", "--ads-address", "127.0.0.1:15128", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert "has not seen Pod bookbuyer/bookbuyer yet" in result.output


def test_osm_local_bootstrap_writes_files_for_the_pods_identity(tmp_path: Path) -> None:
    out = tmp_path / "out"
    uuids = ProxyUuids.in_dir(tmp_path / "state")  # what the controller on this state dir assigned
    ManifestSource(EXAMPLE, Store(), uuids=uuids).load()
    result = CliRunner().invoke(
        cli,
        [
            "local",
            "bootstrap",
            "--local",
            str(EXAMPLE),
            "--state-dir",
            str(tmp_path / "state"),
            "--pod",
            "bookbuyer/bookbuyer",
            "--ads-address",
            "127.0.0.1:15128",
            "--out",
            str(out),
            "--admin-port",
            "15555",
            "--xds",
            "delta",
        ],
    )
    assert result.exit_code == 0, result.output
    uuid = uuids.get("bookbuyer", "bookbuyer")
    assert f"node {uuid}.sidecar.bookbuyer.bookbuyer.cluster.local" in result.output
    cfg = yaml.safe_load((out / "bootstrap.yaml").read_text())
    assert cfg["admin"]["address"]["socket_address"]["port_value"] == 15555
    assert cfg["dynamic_resources"]["ads_config"]["api_type"] == "DELTA_GRPC"
    cert = x509.load_pem_x509_certificate((out / "sds_cert.pem").read_bytes())
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == cfg["node"]["id"]
    assert (out / "sds_key.pem").stat().st_mode & 0o077 == 0
    ca = x509.load_pem_x509_certificate((out / "cacert.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert (tmp_path / "state" / "ca" / "ca.crt").read_bytes() == (out / "cacert.pem").read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pod", "nope"], "expected NAMESPACE/NAME"),
        (["--pod", "bookbuyer/ghost"], "no Pod bookbuyer/ghost"),
        (["--pod", "bookbuyer/bookbuyer", "--ads-address", "15128"], "expected HOST:PORT"),
    ],
)
def test_osm_local_bootstrap_errors(tmp_path: Path, args: list[str], message: str) -> None:
    base = {
        "--local": str(EXAMPLE),
        "--state-dir": str(tmp_path / "s"),
        "--ads-address": "127.0.0.1:1",
        "--out": str(tmp_path / "o"),
    }
    given = dict(zip(args[::2], args[1::2], strict=True))
    argv = ["local", "bootstrap"] + [x for k, v in {**base, **given}.items() for x in (k, v)]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code != 0
    assert message in result.output


def test_osm_version() -> None:
    result = CliRunner().invoke(cli, ["version", "--client-only"])
    assert result.exit_code == 0 and result.output.startswith("osm version ")


def test_the_sidecar_verifies_the_control_planes_identity_and_resumes_no_tls_session() -> None:
    params = BootstrapParams(
        node_id="n", service_cluster="c", ads_host="10.0.0.1", control_plane_san="ads.example.org"
    )
    files = bootstrap_files(params, b"cert", b"key", b"ca")
    validation = yaml.safe_load(files["validation_context_sds_secret.yaml"])["resources"][0][
        "validation_context"
    ]
    assert validation["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "ads.example.org"}}
    ]
    (cluster,) = bootstrap_config(params)["static_resources"]["clusters"]
    assert cluster["transport_socket"]["typed_config"]["max_session_keys"] == 0


def _written_pod(tmp_path: Path) -> tuple[Any, Path]:
    uuids = ProxyUuids.in_dir(tmp_path / "state")
    ManifestSource(EXAMPLE, Store(), uuids=uuids).load()
    return find_pod(EXAMPLE, "bookbuyer", "bookbuyer", tmp_path / "state"), tmp_path / "state"


def test_writing_a_bootstrap_never_follows_a_planted_symlink(tmp_path: Path) -> None:
    pod, state = _written_pod(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    out = tmp_path / "out"
    out.mkdir()
    (out / "sds_key.pem").symlink_to(victim)  # the final name
    (out / ".sds_key.pem.tmp").symlink_to(victim)  # the temporary name an earlier version used
    write_bootstrap(pod, state_dir=state, out=out, ads_host="127.0.0.1", ads_port=15128)
    assert victim.read_text() == "untouched"
    key = out / "sds_key.pem"
    assert not key.is_symlink() and b"PRIVATE KEY" in key.read_bytes()
    assert key.stat().st_mode & 0o077 == 0


def test_a_bootstrap_directory_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    pod, state = _written_pod(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").symlink_to(elsewhere)
    with pytest.raises(BootstrapError, match="is a symlink"):
        write_bootstrap(pod, state_dir=state, out=tmp_path / "out", ads_host="127.0.0.1", ads_port=15128)
    assert list(elsewhere.iterdir()) == []


def test_the_sidecar_certificate_is_short_lived_and_renewed_in_place(tmp_path: Path) -> None:
    pod, state = _written_pod(tmp_path)
    out = tmp_path / "out"
    written = write_bootstrap(pod, state_dir=state, out=out, ads_host="127.0.0.1", ads_port=15128)
    first = x509.load_pem_x509_certificate((out / "sds_cert.pem").read_bytes())
    lifetime = first.not_valid_after_utc - first.not_valid_before_utc
    assert lifetime <= timedelta(hours=24, minutes=2)  # the CA backdates by its clock skew
    assert written.expires == first.not_valid_after_utc
    expires = renew_certificate(out, pod, state_dir=state, validity=timedelta(hours=1))
    second = x509.load_pem_x509_certificate((out / "sds_cert.pem").read_bytes())
    assert second.serial_number != first.serial_number and second.not_valid_after_utc == expires
    assert second.subject == first.subject
    key = serialization.load_pem_private_key((out / "sds_key.pem").read_bytes(), None)
    assert key.public_key().public_numbers() == second.public_key().public_numbers()  # type: ignore[union-attr]
