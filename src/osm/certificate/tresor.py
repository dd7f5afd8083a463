"""The built-in CA "tresor": a self-signed root kept on disk that signs mesh leaf certificates.

Deviation from upstream OSM: the root and leaf keys are ECDSA P-256 instead of RSA 2048. EC keys are
generated in microseconds rather than tens of milliseconds, which matters when every sidecar and every
service identity needs its own key, and Envoy and OpenSSL support them everywhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import tempfile
import warnings
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from osm.certificate.types import Certificate, CertificateError

ROOT_CN = "osm-ca.openservicemesh.io"
ORGANIZATION = "Open Service Mesh"
ROOT_VALIDITY = timedelta(days=3650)
CLOCK_SKEW = timedelta(seconds=60)
CA_DIR = "ca"
CERT_FILE = "ca.crt"
KEY_FILE = "ca.key"
DIR_MODE = 0o700
FILE_MODE = 0o600

SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: SigningKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _common_name(cn: str) -> x509.NameAttribute[str]:
    """The CN attribute, allowing more than the X.509 upper bound of 64 characters.

    Mesh CNs such as `<uuid>.sidecar.<sa>.<ns>.<trust-domain>` routinely exceed the bound; Go's crypto/x509
    (upstream) and Envoy do not enforce it. cryptography then warns instead of raising; that one warning is
    silenced by message, so even if concurrent `catch_warnings` blocks interleave nothing else is hidden.
    """
    if not cn:
        raise ValueError("certificate CN must not be empty")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Attribute's length must be", category=UserWarning)
        return x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False)


def _root_subject() -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, ROOT_CN),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "CA"),
        ]
    )


def _require_utc_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("`now` must be a timezone-aware datetime")


def build_root(key: SigningKey, *, now: datetime) -> x509.Certificate:
    """A self-signed root CA certificate for `key`, valid for ten years from `now`."""
    _require_utc_aware(now)
    subject = _root_subject()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _sans(cn: str, dns_sans: Iterable[str], ip_sans: Iterable[str]) -> list[x509.GeneralName]:
    dns = list(dict.fromkeys([cn, *dns_sans]))
    ips = list(dict.fromkeys(ipaddress.ip_address(ip) for ip in ip_sans))
    return [*(x509.DNSName(name) for name in dns), *(x509.IPAddress(ip) for ip in ips)]


def _authority_key_id(root: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(_issuer_public_key(root))
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _issuer_public_key(root: x509.Certificate) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    public = root.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise CertificateError(f"unsupported root public key type {type(public).__name__}")
    return public


def _public_der(key: SigningKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically; the temp file is 0600 before any content is written."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read: {exc.strerror or exc}", path=path) from exc


def _parse_cert(data: bytes, where: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError(f"not a valid PEM certificate: {exc}", path=where) from exc


def _parse_key(data: bytes, where: Path) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"not a valid unencrypted PEM private key: {exc}", path=where) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertificateError(f"unsupported private key type {type(key).__name__}", path=where)
    return key


def _load_cert(path: Path) -> x509.Certificate:
    return _parse_cert(_read(path), path)


def _load_key(path: Path) -> SigningKey:
    return _parse_key(_read(path), path)


def _check_root(
    cert: x509.Certificate, key: SigningKey, *, cert_path: Path, key_path: Path, now: datetime
) -> None:
    """Raise CertificateError unless `cert` is an unexpired self-signed CA whose key is `key`."""
    if _public_der(key) != _public_der(_issuer_public_key(cert)):
        raise CertificateError(f"private key does not match the CA certificate {cert_path}", path=key_path)
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CertificateError("certificate is not a CA (BasicConstraints CA=true missing)", path=cert_path)
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise CertificateError(f"CA certificate is not validly self-signed: {exc!r}", path=cert_path) from exc
    if now >= cert.not_valid_after_utc:
        raise CertificateError(
            f"CA certificate expired at {cert.not_valid_after_utc.isoformat()}", path=cert_path
        )


class TresorCA:
    """A root CA held in memory that signs ECDSA P-256 leaf certificates."""

    def __init__(self, root_cert: x509.Certificate, root_key: SigningKey) -> None:
        self._root_cert = root_cert
        self._root_key = root_key
        self._root_pem = _cert_pem(root_cert)
        self._authority_key_id = _authority_key_id(root_cert)

    @classmethod
    def create(cls, *, now: datetime) -> TresorCA:
        """A fresh in-memory root CA (not persisted)."""
        key = _new_key()
        return cls(build_root(key, now=now), key)

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes, *, now: datetime, where: str) -> TresorCA:
        """A root kept elsewhere (in Kubernetes, the Secret `where` names); checked as a loaded one is."""
        _require_utc_aware(now)
        loc = Path(where)
        cert, key = _parse_cert(cert_pem, loc), _parse_key(key_pem, loc)
        _check_root(cert, key, cert_path=loc, key_path=loc, now=now)
        return cls(cert, key)

    @classmethod
    def load_or_create(cls, state_dir: Path, *, now: datetime) -> TresorCA:
        """Load the root from `state_dir/ca/`, creating and persisting it on first start.

        A partial, corrupt, mismatched or expired pair raises CertificateError; it is never regenerated.
        """
        _require_utc_aware(now)
        ca_dir = state_dir / CA_DIR
        cert_path, key_path = ca_dir / CERT_FILE, ca_dir / KEY_FILE
        ca_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(ca_dir, DIR_MODE)
        # Several processes (controller, CLI) may share a state dir: create the root under a lock.
        lock_fd = os.open(ca_dir / ".lock", os.O_CREAT | os.O_RDWR, FILE_MODE)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            return cls._load_or_create_locked(cert_path, key_path, now=now)
        finally:
            os.close(lock_fd)

    @classmethod
    def _load_or_create_locked(cls, cert_path: Path, key_path: Path, *, now: datetime) -> TresorCA:
        have_cert, have_key = cert_path.exists(), key_path.exists()
        if have_cert and have_key:
            cert, key = _load_cert(cert_path), _load_key(key_path)
            _check_root(cert, key, cert_path=cert_path, key_path=key_path, now=now)
            return cls(cert, key)
        if have_cert or have_key:
            missing, present = (key_path, cert_path) if have_cert else (cert_path, key_path)
            raise CertificateError(
                f"missing while {present} exists; refusing to regenerate the CA", path=missing
            )
        ca = cls.create(now=now)
        _write_private(key_path, _key_pem(ca._root_key))
        _write_private(cert_path, ca._root_pem)
        return ca

    @property
    def root_cert(self) -> x509.Certificate:
        return self._root_cert

    @property
    def root_cert_pem(self) -> bytes:
        return self._root_pem

    @property
    def root_key_pem(self) -> bytes:
        """The root's private key, to keep it (in Kubernetes, in the CA Secret)."""
        return _key_pem(self._root_key)

    @property
    def trust_bundle_pem(self) -> bytes:
        return self._root_pem

    def issue(
        self,
        cn: str,
        validity: timedelta,
        *,
        now: datetime,
        dns_sans: tuple[str, ...] = (),
        ip_sans: tuple[str, ...] = (),
    ) -> Certificate:
        """Sign a fresh leaf for `cn` (SAN: cn, dns_sans, ip_sans), capped at the root's expiry."""
        _require_utc_aware(now)
        if validity <= timedelta(0):
            raise ValueError(f"certificate validity must be positive, got {validity}")
        not_before = max(now - CLOCK_SKEW, self._root_cert.not_valid_before_utc)
        not_after = min(now + validity, self._root_cert.not_valid_after_utc)
        if not_after <= now:
            raise CertificateError(f"root CA expired at {not_after.isoformat()}; cannot issue {cn!r}")
        key = _new_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name([_common_name(cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION)])
            )
            .issuer_name(self._root_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(_sans(cn, dns_sans, ip_sans)), critical=False)
            .add_extension(_leaf_key_usage(), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(self._authority_key_id, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(self._root_key, hashes.SHA256())
        )
        return Certificate(
            cn=cn,
            cert_pem=_cert_pem(cert),
            key_pem=_key_pem(key),
            issuing_ca_pem=self._root_pem,
            trust_bundle_pem=self.trust_bundle_pem,
            serial=cert.serial_number,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
        )
