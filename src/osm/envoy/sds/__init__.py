"""Envoy SDS generation (pure)."""
