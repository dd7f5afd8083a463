"""Envoy BOOTSTRAP generation (pure)."""
