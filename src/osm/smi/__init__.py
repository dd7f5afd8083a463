"""Typed SMI resources: TrafficTarget, HTTPRouteGroup, TCPRoute, TrafficSplit."""
