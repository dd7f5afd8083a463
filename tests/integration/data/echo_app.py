"""A test app: answers every request 200 with the peer identity header, logging each request line.

Usage: echo_app.py HOST PORT LOGFILE
"""

import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        with open(sys.argv[3], "a") as log:
            log.write(f"{self.command} {self.path}\n")
        body = (self.headers.get("x-forwarded-client-cert") or "").encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
