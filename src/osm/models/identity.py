"""Service identities (Kubernetes ServiceAccounts) and the names the contract derives from them."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TRUST_DOMAIN = "cluster.local"
PROXY_KIND_SIDECAR = "sidecar"


@dataclass(frozen=True, slots=True, order=True)
class ServiceIdentity:
    """A ServiceAccount: `<sa>.<ns>` internally, `<sa>.<ns>.<trust-domain>` as an mTLS principal."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.name}.{self.namespace}"

    @property
    def k8s(self) -> str:
        """The `<ns>/<sa>` form used in SDS secret names."""
        return f"{self.namespace}/{self.name}"

    def principal(self, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> str:
        return f"{self.name}.{self.namespace}.{trust_domain}"


@dataclass(frozen=True, slots=True)
class ProxyCertCN:
    """The xDS client certificate CN: `<uuid>.<kind>.<sa>.<ns>.<trust-domain>`."""

    uuid: str
    kind: str
    identity: ServiceIdentity
    trust_domain: str

    def __str__(self) -> str:
        return f"{self.uuid}.{self.kind}.{self.identity.name}.{self.identity.namespace}.{self.trust_domain}"

    @staticmethod
    def parse(cn: str) -> ProxyCertCN:
        parts = cn.split(".", 4)
        if len(parts) != 5 or not all(parts):
            raise ValueError(
                f"certificate CN {cn!r} is not of the form <uuid>.<kind>.<sa>.<ns>.<trust-domain>"
            )
        uuid, kind, sa, ns, td = parts
        return ProxyCertCN(uuid=uuid, kind=kind, identity=ServiceIdentity(ns, sa), trust_domain=td)
