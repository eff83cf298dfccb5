#!/usr/bin/env python3
"""Schemathesis against a live cluster, driven by the OpenAPI documents the
services serve (`GET /openapi.json`).

Starts 3 acceptors, 1 sequencer and 1 learner from the release binaries on
loopback ports, then runs schemathesis on the sequencer's and the
learner's documents with every check but `positive_data_acceptance` (which
calls a state-dependent 422 a failure, such as a replay below the
learner's retained log): no 5xx, every status, content type, header and body
as documented, schema-violating requests refused. A hook records every
allocation handed out; afterwards the IDs of each sequence must be exactly
contiguous from the ID taken before the run to the one taken after: a
rejected call that consumed an ID would leave a gap.

  tests/schemathesis/run.py            (make test runs it)
  EXAMPLES=500 tests/schemathesis/run.py
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HOST = "127.0.0.1"
HERE = os.path.dirname(os.path.abspath(__file__))
BIN_DIR = os.environ.get(
    "BIN_DIR",
    os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/paxid-target")), "release"),
)
EXAMPLES = os.environ.get("EXAMPLES", "100")


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind((HOST, 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def http(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except (urllib.error.URLError, OSError) as error:
        return None, str(error)


def next_id(sequencer, sequence):
    deadline = time.monotonic() + 20
    while True:
        status, text = http("POST", f"{sequencer}/next-id", {"sequence": sequence})
        if status == 200:
            return json.loads(text)["id"]
        if time.monotonic() > deadline:
            raise SystemExit(f"schemathesis: no ID from {sequencer}: {status} {text}")
        time.sleep(0.1)


def main():
    tmp = tempfile.mkdtemp(prefix="paxid-schemathesis-")
    procs = []
    try:
        a_ports = free_ports(3)
        s_port, l_port = free_ports(2)
        acceptors = ",".join(f"http://{HOST}:{p}" for p in a_ports)

        def launch(name, argv):
            log = open(os.path.join(tmp, f"{name}.log"), "wb")
            procs.append((name, log.name, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)))

        for i, port in enumerate(a_ports):
            launch(f"acceptor-{i}", [f"{BIN_DIR}/paxid-acceptor", "--listen", f"{HOST}:{port}",
                                     "--data-dir", os.path.join(tmp, f"acceptor-{i}")])
        launch("sequencer", [f"{BIN_DIR}/paxid-sequencer", "--listen", f"{HOST}:{s_port}", "--node-id", "1",
                             "--acceptors", acceptors, "--advertise-url", f"http://{HOST}:{s_port}"])
        launch("learner", [f"{BIN_DIR}/paxid-learner", "--listen", f"{HOST}:{l_port}",
                           "--data-dir", os.path.join(tmp, "learner"), "--acceptors", acceptors,
                           "--allow-private-webhooks"])
        sequencer = f"http://{HOST}:{s_port}"
        learner = f"http://{HOST}:{l_port}"
        # Schemathesis generates names; `default` is the one a body-less call uses.
        before = {"default": next_id(sequencer, "default")}
        allocations = os.path.join(tmp, "allocations.jsonl")
        env = dict(os.environ, PAXID_ALLOCATIONS_FILE=allocations,
                   SCHEMATHESIS_HOOKS="hooks")
        env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
        failed = False
        for name, url in [("sequencer", sequencer), ("learner", learner)]:
            print(f"== schemathesis: {name} ({url}/openapi.json)", flush=True)
            run = subprocess.run(
                [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json", "--checks", "all",
                 "--exclude-checks", "positive_data_acceptance", "--max-examples", EXAMPLES,
                 "--seed", "1", "--no-color"],
                env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            tail = run.stdout.strip().splitlines()
            print("\n".join(tail[-25:] if run.returncode else tail[-6:]))
            failed |= run.returncode != 0
        for name, log, proc in procs:
            if proc.poll() is not None:
                print(f"schemathesis: {name} exited with {proc.returncode}", file=sys.stderr)
                failed = True

        # IDs: contiguous per sequence, from the one before to the one after.
        handed = {}
        if os.path.exists(allocations):
            with open(allocations, encoding="utf-8") as f:
                for line in f:
                    sequence, first, count = json.loads(line)
                    handed.setdefault(sequence, []).append((first, count))
        after = next_id(sequencer, "default")
        # A call repeating an Idempotency-Key gets the first call's range again.
        ranges = sorted(set(handed.get("default", [])))
        expected = before["default"] + 1
        for first, count in ranges:
            if first != expected:
                print(f"schemathesis: IDs of `default` jump from {expected} to {first}: "
                      "a call that was not answered 200 consumed IDs", file=sys.stderr)
                failed = True
            expected = first + count
        if after != expected:
            print(f"schemathesis: the ID after the run is {after}, expected {expected}", file=sys.stderr)
            failed = True
        others = sum(len(set(v)) for k, v in handed.items() if k != "default")
        print(f"schemathesis: {len(ranges)} allocations of `default` contiguous from {before['default'] + 1} "
              f"to {after - 1}, {others} of other sequences; ID after the run {after}")
        if failed:
            for name, log, _ in procs:
                with open(log, encoding="utf-8", errors="replace") as f:
                    print(f"--- {name} ---\n{f.read()[-1500:]}", file=sys.stderr)
        return 1 if failed else 0
    finally:
        for _, _, proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, _, proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
