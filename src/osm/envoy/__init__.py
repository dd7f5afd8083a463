"""Envoy configuration: pure generators (CDS, EDS, LDS, RDS, SDS, RBAC, bootstrap) and the ADS server."""
