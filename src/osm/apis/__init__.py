"""Typed OSM CRDs: MeshConfig (config.openservicemesh.io)."""
