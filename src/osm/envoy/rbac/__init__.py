"""Envoy RBAC generation (pure)."""
