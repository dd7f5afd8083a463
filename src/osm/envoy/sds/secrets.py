"""SDS: the proxy's service certificate and the validation contexts for mTLS, inbound and outbound."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2

from osm.envoy.common import data_source
from osm.envoy.sds import names
from osm.models.identity import ServiceIdentity


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


def outbound_root_secret(trust_bundle_pem: bytes) -> Any:
    """Trust the mesh CA on the client side. Which peers a cluster accepts is in the cluster itself."""
    return secret_pb2.Secret(
        name=names.OUTBOUND_ROOT,
        validation_context=common_pb2.CertificateValidationContext(trusted_ca=data_source(trust_bundle_pem)),
    )
