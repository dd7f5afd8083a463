"""Envoy RDS generation (pure)."""
