"""Open Service Mesh, in Python: an SMI-native, lightweight service mesh driving Envoy sidecars."""

__version__ = "0.1.0"
