"""Sidecar injection: what the injector adds to a meshed pod (iptables interception rules, ...)."""
