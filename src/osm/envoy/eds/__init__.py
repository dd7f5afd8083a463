"""Envoy EDS generation (pure)."""
