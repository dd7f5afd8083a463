"""SDS: the proxy's service certificate and the validation contexts for mTLS, inbound and outbound."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from envoy.type.matcher.v3 import string_pb2

from osm.envoy.common import data_source
from osm.envoy.sds import names
from osm.models.identity import ServiceIdentity
from osm.models.service import MeshService

NO_PEER = "no-allowed-peer.invalid"


@dataclass(frozen=True, slots=True)
class CertMaterial:
    """What SDS needs from the certificate manager: one identity's cert chain + key, and the trust bundle."""

    cert_chain_pem: bytes
    key_pem: bytes
    trust_bundle_pem: bytes


def service_cert_secret(identity: ServiceIdentity, cert: CertMaterial) -> Any:
    return secret_pb2.Secret(
        name=names.service_cert(identity),
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=data_source(cert.cert_chain_pem), private_key=data_source(cert.key_pem)
        ),
    )


def inbound_root_secret(identity: ServiceIdentity, trust_bundle_pem: bytes) -> Any:
    """Trust the mesh CA only; identity is enforced by RBAC."""
    return secret_pb2.Secret(
        name=names.inbound_root(identity),
        validation_context=common_pb2.CertificateValidationContext(trusted_ca=data_source(trust_bundle_pem)),
    )


def outbound_root_secret(
    service: MeshService, peer_principals: Iterable[str], trust_bundle_pem: bytes
) -> Any:
    """Trust the mesh CA, and only peers whose certificate names an identity backing the service."""
    # With no allowed peer, match a name no certificate carries: an empty list would accept any mesh cert.
    allowed = sorted(set(peer_principals)) or [NO_PEER]
    matchers = [
        common_pb2.SubjectAltNameMatcher(
            san_type=common_pb2.SubjectAltNameMatcher.DNS, matcher=string_pb2.StringMatcher(exact=p)
        )
        for p in allowed
    ]
    return secret_pb2.Secret(
        name=names.outbound_root(service),
        validation_context=common_pb2.CertificateValidationContext(
            trusted_ca=data_source(trust_bundle_pem), match_typed_subject_alt_names=matchers
        ),
    )
