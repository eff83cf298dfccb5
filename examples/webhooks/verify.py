#!/usr/bin/env python3
"""A paxid webhook receiver in Python, verifying with the `standardwebhooks`
package (pip install standardwebhooks==1.1.0): signature and a 5-minute
timestamp tolerance. Answers 204 only to a valid message, deduplicates by
slot, and appends one JSON line per request to OUT_FILE.

    WEBHOOK_SECRET=whsec_... python3 verify.py 127.0.0.1:9000 received.jsonl

The contract is in docs/webhooks.md; tests/tests/webhooks.rs runs this
receiver against a real learner.
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

# Webhook() takes the secret with its whsec_ prefix; verify() checks the
# signature and that webhook-timestamp is within 5 minutes of now.
WEBHOOK = Webhook(os.environ["WEBHOOK_SECRET"])
LOCK = threading.Lock()
# First slot not yet processed. A real receiver keeps this mark in its own
# database, in the same transaction as the IDs it records.
NEXT_SLOT = 0
OUT = None


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global NEXT_SLOT
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)  # the exact bytes: verify before parsing
        webhook_id = self.headers.get("webhook-id", "")
        with LOCK:
            try:
                message = WEBHOOK.verify(body, dict(self.headers.items()))
            except (WebhookVerificationError, ValueError) as error:
                record({"accepted": False, "webhook_id": webhook_id, "reason": str(error)})
                return self.answer(401)
            new_slots = []
            if message.get("type") == "ids.allocated":
                for slot in message["data"]["slots"]:
                    # Slots come in order: one below the mark was processed
                    # already (a retry or a replay).
                    if slot["slot"] >= NEXT_SLOT:
                        new_slots.append(slot["slot"])
                        NEXT_SLOT = slot["slot"] + 1
            elif message.get("type") == "ids.gap":
                # Slots from_slot..below_slot will never come.
                NEXT_SLOT = max(NEXT_SLOT, message["data"]["below_slot"])
            # Unknown types: acknowledge and ignore (new ones may come).
            record({
                "accepted": True,
                "webhook_id": webhook_id,
                "type": message.get("type"),
                "new_slots": new_slots,
                "body": body.decode(),
            })
        self.answer(204)

    def answer(self, status):
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def record(line):
    # Written (and flushed) before answering: what was acknowledged is kept.
    OUT.write(json.dumps(line) + "\n")
    OUT.flush()


def main():
    global OUT
    if len(sys.argv) != 3:
        sys.exit("usage: WEBHOOK_SECRET=whsec_... verify.py HOST:PORT OUT_FILE")
    host, port = sys.argv[1].rsplit(":", 1)
    OUT = open(sys.argv[2], "a", encoding="utf-8")
    server = ThreadingHTTPServer((host, int(port)), Handler)
    print(f"verify.py listening on {sys.argv[1]}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
