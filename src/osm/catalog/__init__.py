"""The mesh catalog (pure): MeshState -> per-identity inbound and outbound traffic policies."""

from osm.catalog.catalog import MeshCatalog, ProxyGroup

__all__ = ["MeshCatalog", "ProxyGroup"]
