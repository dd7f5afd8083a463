"""The Kubernetes source and clients: the only package that imports the Kubernetes client library."""
