"""A collector that takes OTLP/HTTP trace exports and throws them away, counting them.

    python3 bench/otlp_sink.py PORT

Answers every `POST /v1/traces` with 200 and an empty body (an empty
ExportTraceServiceResponse: everything accepted); `GET /count` gives the exports and the
bytes taken so far, as `exports bytes`.
"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

exports = 0
taken = 0


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global exports, taken
        length = int(self.headers.get("content-length", "0"))
        taken += len(self.rfile.read(length))
        exports += 1
        self.reply(b"", "application/x-protobuf")

    def do_GET(self):
        self.reply(f"{exports} {taken}\n".encode(), "text/plain")

    def reply(self, body, content_type):
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
