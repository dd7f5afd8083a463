"""The ingress gateway's client certificate (MeshConfig `certificate.ingressGateway`), pure.

Upstream OSM issues it from the mesh's CA into a Secret (`tls.crt`, `tls.key`, `ca.crt`) that an ingress
controller uses for mTLS to the sidecars of its IngressBackends, whose `AuthenticatedPrincipal` sources
name one of its subject alternative names. It is renewed when a third of its lifetime is left, and
re-issued at once when the names change or the mesh's root changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from cryptography import x509

from osm.apis.meshconfig import IngressGatewayCertSpec
from osm.certificate.tresor import TresorCA

TLS_CERT, TLS_KEY, CA_CERT = "tls.crt", "tls.key", "ca.crt"
KEYS = (TLS_CERT, TLS_KEY, CA_CERT)


def issue(ca: TresorCA, spec: IngressGatewayCertSpec, *, now: datetime) -> dict[str, bytes]:
    """A new certificate for the spec's names (the first is also the CN), as the Secret's data."""
    names = spec.subject_alt_names
    cert = ca.issue(names[0], timedelta(seconds=spec.validity_duration), now=now, dns_sans=names[1:])
    return {TLS_CERT: cert.cert_pem, TLS_KEY: cert.key_pem, CA_CERT: ca.trust_bundle_pem}


def why_reissue(
    spec: IngressGatewayCertSpec, data: Mapping[str, bytes] | None, trust_bundle: bytes, *, now: datetime
) -> str:
    """Why the Secret's data must be issued again ("" when it is still good): missing, unreadable, other
    names, another root, or a third (or less) of its lifetime left."""
    if data is None:
        return "it does not exist"
    missing = [k for k in KEYS if not data.get(k)]
    if missing:
        return f"it lacks {', '.join(missing)}"
    if data[CA_CERT] != trust_bundle:
        return "the mesh's root certificate changed"
    try:
        cert = x509.load_pem_x509_certificate(data[TLS_CERT])
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound) as e:
        return f"its certificate is unreadable ({e})"
    if sorted(sans.get_values_for_type(x509.DNSName)) != sorted(set(spec.subject_alt_names)):
        return "its names differ from certificate.ingressGateway.subjectAltNames"
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    if cert.not_valid_after_utc - now <= lifetime / 3:
        return "a third of its lifetime or less is left"
    return ""
