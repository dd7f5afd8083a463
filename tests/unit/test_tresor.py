from __future__ import annotations

import ipaddress
import queue
import socket
import ssl
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from osm.certificate.tresor import TresorCA
from osm.certificate.types import Certificate, CertificateError
from osm.models.identity import ProxyCertCN, ServiceIdentity

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
TIMEOUT = 10.0


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leaf(cert: Certificate) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cert.cert_pem)


def _key_der(pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(pem, password=None)
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# --- root CA persistence -------------------------------------------------------------------------------


def test_root_created_with_private_permissions(tmp_path: Path) -> None:
    ca = TresorCA.load_or_create(tmp_path, now=NOW)

    ca_dir = tmp_path / "ca"
    assert _mode(ca_dir) == 0o700
    assert _mode(ca_dir / "ca.crt") == 0o600
    assert _mode(ca_dir / "ca.key") == 0o600
    # no temp files left behind; the lock file (shared with other processes on the state dir) is private too
    assert sorted(p.name for p in ca_dir.iterdir()) == [".lock", "ca.crt", "ca.key"]
    assert _mode(ca_dir / ".lock") == 0o600
    assert (ca_dir / "ca.crt").read_bytes() == ca.root_cert_pem


def test_root_attributes(tmp_path: Path) -> None:
    root = TresorCA.load_or_create(tmp_path, now=NOW).root_cert

    subject = {attr.oid: attr.value for attr in root.subject}
    assert subject == {
        NameOID.COMMON_NAME: "osm-ca.openservicemesh.io",
        NameOID.ORGANIZATION_NAME: "Open Service Mesh",
        NameOID.COUNTRY_NAME: "US",
        NameOID.LOCALITY_NAME: "CA",
    }
    assert root.issuer == root.subject
    public_key = root.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    assert root.not_valid_after_utc == NOW + timedelta(days=3650)
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = root.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and usage.digital_signature
    root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    root.verify_directly_issued_by(root)


def test_root_reused_on_restart(tmp_path: Path) -> None:
    first = TresorCA.load_or_create(tmp_path, now=NOW)
    key_before = (tmp_path / "ca" / "ca.key").read_bytes()

    second = TresorCA.load_or_create(tmp_path, now=NOW + timedelta(days=30))

    assert second.root_cert.serial_number == first.root_cert.serial_number
    assert second.root_cert_pem == first.root_cert_pem
    assert (tmp_path / "ca" / "ca.key").read_bytes() == key_before
    # A leaf from the reloaded CA is signed by the same key.
    _leaf(second.issue("a.b", timedelta(hours=1), now=NOW)).verify_directly_issued_by(first.root_cert)


def test_mismatched_key_raises_naming_the_key_file(tmp_path: Path) -> None:
    TresorCA.load_or_create(tmp_path, now=NOW)
    other = tmp_path / "other"
    TresorCA.load_or_create(other, now=NOW)
    key_path = tmp_path / "ca" / "ca.key"
    key_path.write_bytes((other / "ca" / "ca.key").read_bytes())
    cert_before = (tmp_path / "ca" / "ca.crt").read_bytes()

    with pytest.raises(CertificateError, match="does not match") as info:
        TresorCA.load_or_create(tmp_path, now=NOW)

    assert info.value.path == key_path
    assert str(key_path) in str(info.value)
    assert (tmp_path / "ca" / "ca.crt").read_bytes() == cert_before  # not regenerated


@pytest.mark.parametrize("name", ["ca.crt", "ca.key"])
def test_corrupt_file_raises_naming_it(tmp_path: Path, name: str) -> None:
    TresorCA.load_or_create(tmp_path, now=NOW)
    path = tmp_path / "ca" / name
    path.write_bytes(b"-----BEGIN GARBAGE-----\nnope\n")

    with pytest.raises(CertificateError) as info:
        TresorCA.load_or_create(tmp_path, now=NOW)

    assert info.value.path == path
    assert str(path) in str(info.value)
    assert path.read_bytes().startswith(b"-----BEGIN GARBAGE")


def test_half_written_pair_is_not_regenerated(tmp_path: Path) -> None:
    TresorCA.load_or_create(tmp_path, now=NOW)
    (tmp_path / "ca" / "ca.crt").unlink()

    with pytest.raises(CertificateError, match="refusing to regenerate") as info:
        TresorCA.load_or_create(tmp_path, now=NOW)

    assert info.value.path == tmp_path / "ca" / "ca.crt"
    assert not (tmp_path / "ca" / "ca.crt").exists()


def test_expired_root_raises(tmp_path: Path) -> None:
    TresorCA.load_or_create(tmp_path, now=NOW)

    with pytest.raises(CertificateError, match="expired"):
        TresorCA.load_or_create(tmp_path, now=NOW + timedelta(days=3651))


def test_naive_now_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        TresorCA.load_or_create(tmp_path, now=datetime(2025, 1, 1))


# --- leaf issuance -------------------------------------------------------------------------------------


def test_leaf_verifies_against_root_and_has_mesh_attributes() -> None:
    ca = TresorCA.create(now=NOW)
    cert = ca.issue("bookstore.bookstore.cluster.local", timedelta(hours=24), now=NOW)
    leaf = _leaf(cert)

    leaf.verify_directly_issued_by(ca.root_cert)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cert.cn
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Open Service Mesh"
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["bookstore.bookstore.cluster.local"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.root_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert cert.serial == leaf.serial_number
    assert cert.issuing_ca_pem == ca.root_cert_pem
    assert cert.trust_bundle_pem == ca.trust_bundle_pem == ca.root_cert_pem


def test_leaf_key_is_unencrypted_pkcs8_ec_matching_cert() -> None:
    ca = TresorCA.create(now=NOW)
    cert = ca.issue("a.b", timedelta(hours=1), now=NOW)

    assert cert.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    key = serialization.load_pem_private_key(cert.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(*spki) == _leaf(cert).public_key().public_bytes(*spki)


def test_leaf_validity_window() -> None:
    ca = TresorCA.create(now=NOW)
    cert = ca.issue("a.b", timedelta(hours=24), now=NOW)
    leaf = _leaf(cert)

    assert cert.not_after == leaf.not_valid_after_utc == NOW + timedelta(hours=24)
    assert cert.not_before == leaf.not_valid_before_utc == NOW - timedelta(seconds=60)
    assert cert.not_after.tzinfo is not None
    assert cert.validity == timedelta(hours=24, seconds=60)
    assert cert.remaining(NOW + timedelta(hours=1)) == timedelta(hours=23)


def test_leaf_capped_at_root_expiry() -> None:
    ca = TresorCA.create(now=NOW)
    later = NOW + timedelta(days=3000)

    cert = ca.issue("a.b", timedelta(days=3650), now=later)

    assert cert.not_after == ca.root_cert.not_valid_after_utc


def test_each_leaf_gets_fresh_key_and_serial() -> None:
    ca = TresorCA.create(now=NOW)
    a = ca.issue("a.b", timedelta(hours=1), now=NOW)
    b = ca.issue("a.b", timedelta(hours=1), now=NOW)

    assert a.serial != b.serial
    assert _key_der(a.key_pem) != _key_der(b.key_pem)


def test_extra_dns_and_ip_sans() -> None:
    ca = TresorCA.create(now=NOW)
    cert = ca.issue(
        "osm-controller.osm-system.svc",
        timedelta(hours=1),
        now=NOW,
        dns_sans=("osm-controller", "osm-controller.osm-system.svc", "localhost"),
        ip_sans=("127.0.0.1", "::1"),
    )

    san = _leaf(cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [
        "osm-controller.osm-system.svc",
        "osm-controller",
        "localhost",
    ]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]


@pytest.mark.filterwarnings("ignore:Attribute's length must be:UserWarning")  # cryptography, when parsing
def test_long_proxy_cn_is_accepted() -> None:
    cn = str(
        ProxyCertCN(
            "0f6d9c1e-5a0b-4c7e-9d61-4a2b3c4d5e6f",
            "sidecar",
            ServiceIdentity("bookstore", "bookstore-v2"),
            "cluster.local",
        )
    )
    assert len(cn) > 64
    cert = TresorCA.create(now=NOW).issue(cn, timedelta(hours=1), now=NOW)

    assert _leaf(cert).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn


@pytest.mark.parametrize(
    ("cn", "validity", "kwargs"),
    [
        ("", timedelta(hours=1), {}),
        ("a.b", timedelta(0), {}),
        ("a.b", timedelta(hours=1), {"ip_sans": ("not-an-ip",)}),
    ],
)
def test_invalid_issue_requests_rejected(
    cn: str, validity: timedelta, kwargs: dict[str, tuple[str, ...]]
) -> None:
    with pytest.raises(ValueError):
        TresorCA.create(now=NOW).issue(cn, validity, now=NOW, **kwargs)


def test_issue_after_root_expiry_raises() -> None:
    ca = TresorCA.create(now=NOW)

    with pytest.raises(CertificateError, match="expired"):
        ca.issue("a.b", timedelta(hours=1), now=NOW + timedelta(days=3651))


# --- real TLS handshake --------------------------------------------------------------------------------


def _write_pair(directory: Path, name: str, cert: Certificate) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.cert_pem)
    key_path.write_bytes(cert.key_pem)
    return cert_path, key_path


def _serve_once(listener: socket.socket, context: ssl.SSLContext, results: queue.Queue[object]) -> None:
    try:
        conn, _ = listener.accept()
    except OSError as exc:
        results.put(exc)
        return
    try:
        conn.settimeout(TIMEOUT)
        with context.wrap_socket(conn, server_side=True) as tls:
            peer = tls.getpeercert()
            tls.sendall(b"ok")
            results.put(peer)
    except (OSError, ssl.SSLError) as exc:
        results.put(exc)
    finally:
        conn.close()


def _handshake(tmp_path: Path, server: Certificate, client: Certificate) -> tuple[object, bytes | Exception]:
    """Run one mTLS exchange; return (server outcome, bytes the client received or its error)."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*_write_pair(tmp_path, "server", server))
    server_ctx.load_verify_locations(cadata=server.trust_bundle_pem.decode())
    server_ctx.verify_mode = ssl.CERT_REQUIRED

    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_cert_chain(*_write_pair(tmp_path, "client", client))
    client_ctx.load_verify_locations(cadata=server.trust_bundle_pem.decode())

    results: queue.Queue[object] = queue.Queue()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    thread = threading.Thread(target=_serve_once, args=(listener, server_ctx, results), daemon=True)
    thread.start()
    received: bytes | Exception
    try:
        raw = socket.create_connection(listener.getsockname(), timeout=TIMEOUT)
        try:
            with client_ctx.wrap_socket(raw, server_hostname=server.cn) as tls:
                received = tls.recv(16)
        except (OSError, ssl.SSLError) as exc:
            received = exc
        finally:
            raw.close()
        outcome = results.get(timeout=TIMEOUT)
    finally:
        listener.close()
        thread.join(timeout=TIMEOUT)
    assert not thread.is_alive()
    return outcome, received


def test_mtls_handshake_with_issued_certs(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ca = TresorCA.load_or_create(tmp_path, now=now)
    server = ca.issue("bookstore.bookstore.cluster.local", timedelta(hours=1), now=now)
    client_cn = str(
        ProxyCertCN(
            "8d2f7b1c-0000-4000-8000-000000000001",
            "sidecar",
            ServiceIdentity("bookbuyer", "bookbuyer"),
            "cluster.local",
        )
    )
    client = ca.issue(client_cn, timedelta(hours=1), now=now)

    outcome, received = _handshake(tmp_path, server, client)

    assert received == b"ok"
    assert isinstance(outcome, dict)
    assert ((("commonName", client_cn),),) == tuple(
        rdn for rdn in outcome["subject"] if rdn[0][0] == "commonName"
    )


def test_client_cert_from_other_ca_is_refused(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    server = TresorCA.create(now=now).issue("bookstore.bookstore.cluster.local", timedelta(hours=1), now=now)
    stranger = TresorCA.create(now=now).issue(
        "bookbuyer.bookbuyer.cluster.local", timedelta(hours=1), now=now
    )

    outcome, received = _handshake(tmp_path, server, stranger)

    assert isinstance(outcome, ssl.SSLError)
    assert "certificate verify failed" in str(outcome) or "unknown ca" in str(outcome).lower()
    assert received != b"ok"
