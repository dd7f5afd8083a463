"""Frozen, typed vocabulary of the mesh: Kubernetes objects, identities, services, endpoints."""
