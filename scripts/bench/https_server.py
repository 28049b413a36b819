#!/usr/bin/env python3
"""https_server.py CERT KEY — the https endpoint of scripts/bench-monitors.sh's
footprint step: answers every GET/HEAD on 127.0.0.1 with 200 and a short body
over TLS (a self-signed certificate; the monitors run with tls_verify off).
Prints "ready PORT" once listening on a free port; stops on SIGTERM."""
import http.server
import signal
import socketserver
import ssl
import sys

BODY = b'{"status":"ok"}'


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(BODY)

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv = Server(("127.0.0.1", 0), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", srv.server_address[1], flush=True)
    srv.serve_forever()


main()
