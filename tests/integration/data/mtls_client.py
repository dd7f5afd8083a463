"""A mesh client for tests: one HTTP/1.1 request over mTLS (ALPN osm, SNI = the service FQDN).

Usage: mtls_client.py HOST PORT SNI METHOD PATH [CERT KEY CA | --no-cert CA]
Prints one JSON line: {"status": N, "body": "..."} or {"error": "..."}.
"""

import json
import socket
import ssl
import sys


def main() -> None:
    host, port, sni, method, path = sys.argv[1:6]
    rest = sys.argv[6:]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.set_alpn_protocols(["osm"])
    if rest[0] == "--no-cert":
        ctx.load_verify_locations(rest[1])
    else:
        ctx.load_cert_chain(rest[0], rest[1])
        ctx.load_verify_locations(rest[2])
    try:
        with (
            socket.create_connection((host, int(port)), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname=sni) as tls,
        ):
            tls.settimeout(5)
            tls.sendall(f"{method} {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
    except (OSError, ssl.SSLError) as e:
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return
    if not data:
        print(json.dumps({"error": "connection closed without a response"}))
        return
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    print(
        json.dumps(
            {
                "status": status,
                "body": body.decode(errors="replace"),
                "headers": head.decode(errors="replace"),
            }
        )
    )


main()
