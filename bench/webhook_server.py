#!/usr/bin/python3
"""A receiving end for bench/webhook_bench: python's http.server answering 200 to every POST,
HTTP/1.1 keep-alive (or --http10: a connection per request), optionally TLS.

usage: webhook_server.py PORT [--http10] [--tls CERT KEY]
  then: build/bench/webhook_bench -n 5000 [--ca CA] http(s)://127.0.0.1:PORT/hook
(tests/system/actions_webhook.py's make_ca() makes a CA and a certificate for 127.0.0.1.)
"""
import http.server
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    # without it, the body's small second write waits for the client's delayed ACK: 40 ms
    # a request
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.0" if "--http10" in sys.argv else "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    s = Server(("127.0.0.1", int(sys.argv[1])), Handler)
    if "--tls" in sys.argv:
        i = sys.argv.index("--tls")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[i + 1], sys.argv[i + 2])
        s.socket = ctx.wrap_socket(s.socket, server_side=True)
    s.serve_forever()


if __name__ == "__main__":
    main()
