#!/usr/bin/env python3
"""A webhook subscriber for `make bench`: answers every POST with 204.

It only has to keep the learner's delivery going during the benchmark, so
it acknowledges without verifying signatures (the end-to-end tests verify
them). `GET /` answers how many deliveries it received.

Usage: receiver.py PORT
"""

import http.server
import signal
import sys
import threading

DELIVERIES = 0
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the learner expects

    def do_POST(self):  # noqa: N802 (the stdlib's naming)
        global DELIVERIES
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with LOCK:
            DELIVERIES += 1
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):  # noqa: N802
        with LOCK:
            body = f'{{"deliveries": {DELIVERIES}}}'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 (the stdlib's signature)
        pass


def main():
    port = int(sys.argv[1])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True

    def stop(_signum, _frame):
        print(f"receiver: {DELIVERIES} webhook deliveries", file=sys.stderr, flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
