"""Event coalescing between the state sources and the xDS server."""
