"""The xDS (ADS) protocol: sans-I/O stream state machines, the proxy registry and the grpc.aio server."""
