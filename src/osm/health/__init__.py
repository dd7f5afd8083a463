"""Health probes and the control plane's small HTTP endpoints."""
