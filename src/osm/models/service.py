"""Mesh services (one per Service port) and endpoints, with the contract's naming helpers."""

from __future__ import annotations

from dataclasses import dataclass, field

from osm.models.identity import DEFAULT_TRUST_DOMAIN


@dataclass(frozen=True, slots=True, order=True)
class MeshService:
    """One port of a Kubernetes Service in a monitored namespace."""

    namespace: str
    name: str
    port: int
    target_port: int
    protocol: str
    _hash: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        # Mesh services key the generators' caches: hash them once.
        object.__setattr__(
            self, "_hash", hash((self.namespace, self.name, self.port, self.target_port, self.protocol))
        )

    def __hash__(self) -> int:
        return self._hash

    @property
    def k8s(self) -> str:
        return f"{self.namespace}/{self.name}"

    def fqdn(self, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> str:
        return f"{self.name}.{self.namespace}.svc.{trust_domain}"

    @property
    def cluster_name(self) -> str:
        """Upstream EDS cluster: `<ns>/<svc>|<targetPort>`."""
        return f"{self.namespace}/{self.name}|{self.target_port}"

    @property
    def local_cluster_name(self) -> str:
        """Inbound cluster to the local app: `<ns>/<svc>|<targetPort>|local`."""
        return f"{self.namespace}/{self.name}|{self.target_port}|local"

    @property
    def outbound_chain_name(self) -> str:
        return f"outbound_{self.namespace}/{self.name}_{self.port}_{self.protocol}"

    @property
    def inbound_chain_name(self) -> str:
        return f"inbound_{self.namespace}/{self.name}_{self.target_port}_{self.protocol}"

    def hostnames(self, same_namespace: bool, cluster_domain: str = DEFAULT_TRUST_DOMAIN) -> tuple[str, ...]:
        """Kubernetes host forms for virtual-host domains. They carry no port: the route configurations
        that use them match the Host header with its port ignored (`ignore_port_in_host_matching`)."""
        bases = [self.name] if same_namespace else []
        return (
            *bases,
            f"{self.name}.{self.namespace}",
            f"{self.name}.{self.namespace}.svc",
            f"{self.name}.{self.namespace}.svc.{cluster_domain.split('.')[0]}",
            f"{self.name}.{self.namespace}.svc.{cluster_domain}",
        )


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    ip: str
    port: int
