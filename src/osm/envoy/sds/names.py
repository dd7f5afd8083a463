"""SDS secret names of the contract."""

from __future__ import annotations

from osm.models.identity import ServiceIdentity

PREFIX_SERVICE_CERT = "service-cert"
PREFIX_OUTBOUND_ROOT = "root-cert-for-mtls-outbound"
PREFIX_INBOUND_ROOT = "root-cert-for-mtls-inbound"


def service_cert(identity: ServiceIdentity) -> str:
    return f"{PREFIX_SERVICE_CERT}:{identity.k8s}"


# The mesh CA, trusted by every upstream cluster. Upstream OSM sends one such secret per upstream service
# (`root-cert-for-mtls-outbound:<ns>/<svc>`), each repeating the CA beside that service's allowed peer
# names; here the names are in each cluster's combined validation context and the CA goes out once.
OUTBOUND_ROOT = PREFIX_OUTBOUND_ROOT


def inbound_root(identity: ServiceIdentity) -> str:
    return f"{PREFIX_INBOUND_ROOT}:{identity.k8s}"
