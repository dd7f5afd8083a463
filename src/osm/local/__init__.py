"""Local mode: a directory of Kubernetes YAML as the state source (and, later, the local pod runtime)."""
