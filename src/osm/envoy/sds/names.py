"""SDS secret names of the contract."""

from __future__ import annotations

from osm.models.identity import ServiceIdentity
from osm.models.service import MeshService

PREFIX_SERVICE_CERT = "service-cert"
PREFIX_OUTBOUND_ROOT = "root-cert-for-mtls-outbound"
PREFIX_INBOUND_ROOT = "root-cert-for-mtls-inbound"


def service_cert(identity: ServiceIdentity) -> str:
    return f"{PREFIX_SERVICE_CERT}:{identity.k8s}"


def outbound_root(service: MeshService) -> str:
    return f"{PREFIX_OUTBOUND_ROOT}:{service.k8s}"


def inbound_root(identity: ServiceIdentity) -> str:
    return f"{PREFIX_INBOUND_ROOT}:{identity.k8s}"
