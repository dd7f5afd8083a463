"""Envoy LDS generation (pure)."""
