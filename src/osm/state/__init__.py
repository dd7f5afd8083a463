"""Object store, decoding of Kubernetes documents, and the frozen MeshState snapshot."""
