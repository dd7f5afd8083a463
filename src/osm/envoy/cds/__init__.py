"""Envoy CDS generation (pure)."""
